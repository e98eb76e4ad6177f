"""Hosts (machines running an agent) and the model instances they run."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from marketplace.accounts.models import Account
from marketplace.catalog.models import Hardware, Model, Version


class Host(models.Model):
    """A machine whose agent runs instances. Agents register and heartbeat themselves."""

    name = models.CharField(max_length=200, unique=True)
    runtime = models.CharField(max_length=20, default="local")
    hardware = models.ManyToManyField(Hardware, blank=True, related_name="hosts")
    max_instances = models.PositiveIntegerField(default=4)
    # GPU inventory as the agent reports it: [{"index": 0, "uuid": "GPU-…", "name": "…"}]
    gpus = models.JSONField(default=list, blank=True)
    agent_pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Set when the host stopped heartbeating and its instances were written off; cleared when
    # its agent registers again.
    down_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name

    @property
    def is_online(self) -> bool:
        if self.last_heartbeat_at is None:
            return False
        grace = timedelta(seconds=max(10.0, settings.AGENT_HEARTBEAT_SECONDS * 5))
        return timezone.now() - self.last_heartbeat_at < grace

    @property
    def gpu_device_ids(self) -> list[str]:
        """The ids the platform hands to Docker: the GPU's UUID when known, else its index."""
        return [str(gpu.get("uuid") or gpu.get("index")) for gpu in self.gpus]


class Deployment(models.Model):
    """A named, owner-controlled way to run one version (Replicate's deployments): its own
    hardware, a floor and ceiling of instances and an idle timeout."""

    owner = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=100)
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="deployments")
    version = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="deployments")
    hardware = models.ForeignKey(Hardware, on_delete=models.PROTECT, related_name="+")
    min_instances = models.PositiveIntegerField(default=0)
    max_instances = models.PositiveIntegerField(default=1)
    # Seconds an idle instance above min_instances stays up; empty means INSTANCE_IDLE_TIMEOUT.
    idle_timeout = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint("owner", "name", name="deployment_owner_name_unique"),
            models.CheckConstraint(
                condition=models.Q(max_instances__gte=models.F("min_instances")),
                name="deployment_min_le_max",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.owner.username}/{self.name}"


def hardware_for(version: Version, deployment: Deployment | None = None) -> Hardware:
    """What a prediction (or an instance) of ``version`` runs on: its deployment's hardware,
    else its model's default. The one place this is decided."""
    return deployment.hardware if deployment is not None else version.model.default_hardware


class DeploymentRelease(models.Model):
    """One configuration a deployment had: number 1 at creation, +1 on every update. The latest
    is Replicate's ``current_release``."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="releases")
    number = models.PositiveIntegerField()
    version = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="+")
    hardware = models.ForeignKey(Hardware, on_delete=models.PROTECT, related_name="+")
    min_instances = models.PositiveIntegerField()
    max_instances = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint("deployment", "number", name="deployment_release_unique"),
        ]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.deployment} release {self.number}"


class Instance(models.Model):
    """One running Cog server for one version, with ``slots`` concurrent predictions."""

    class State(models.TextChoices):
        STARTING = "starting"
        READY = "ready"
        STOPPING = "stopping"
        STOPPED = "stopped"
        FAILED = "failed"

    LIVE = (State.STARTING, State.READY, State.STOPPING)

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="instances")
    version = models.ForeignKey(Version, on_delete=models.CASCADE, related_name="instances")
    hardware = models.ForeignKey(Hardware, on_delete=models.PROTECT, related_name="+")
    # Set when the instance serves a deployment rather than the shared pool of its version.
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="instances"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.STARTING)
    # Cog's mode: "train" instances run the version's trainer (``--x-mode train``) and serve
    # its trainings' pool only.
    mode = models.CharField(max_length=8, default="predict")
    runtime = models.CharField(max_length=20)
    # What the runtime needs to find it again after an agent restart: a pid or a container id.
    runtime_ref = models.CharField(max_length=200, blank=True)
    url = models.CharField(max_length=200, blank=True)
    slots = models.PositiveSmallIntegerField(default=1)
    gpu_device_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    ready_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    setup_logs = models.TextField(blank=True)
    stop_reason = models.CharField(max_length=500, blank=True)
    # Why it stopped, as one of predictions.policy.StopCause (for /metrics and the hosts page).
    stop_cause = models.CharField(max_length=32, blank=True)
    # The instance that took its place when it was evicted for another model.
    replaced_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaced"
    )

    class Meta:
        indexes = [
            models.Index(fields=["host", "state"]),
            models.Index(fields=["version", "state"]),
        ]

    def __str__(self) -> str:
        return f"instance {self.pk} of {self.version_id[:12]} on {self.host_id} ({self.state})"

"""Seed the hardware catalogue: Replicate's public SKUs and per-second prices.

Operators edit prices in the admin afterwards; this only creates rows that are missing.
"""

from decimal import Decimal

from django.db import migrations

# sku, name, $/second, GPUs, vCPUs, RAM GB, GPU RAM GB
HARDWARE = [
    ("cpu", "CPU", "0.000100", 0, 4, 8, None),
    ("gpu-t4", "Nvidia T4 GPU", "0.000225", 1, 4, 16, 16),
    ("gpu-a40-small", "Nvidia A40 GPU", "0.000575", 1, 4, 16, 48),
    ("gpu-a40-large", "Nvidia A40 (Large) GPU", "0.000725", 1, 10, 72, 48),
    ("gpu-a40-large-2x", "2x Nvidia A40 (Large) GPU", "0.001450", 2, 20, 144, 96),
    ("gpu-a40-large-4x", "4x Nvidia A40 (Large) GPU", "0.002900", 4, 40, 288, 192),
    ("gpu-a40-large-8x", "8x Nvidia A40 (Large) GPU", "0.005800", 8, 48, 680, 384),
    ("gpu-l40s", "Nvidia L40S GPU", "0.000975", 1, 10, 65, 48),
    ("gpu-2x-l40s", "2x Nvidia L40S GPU", "0.001950", 2, 20, 144, 96),
    ("gpu-4x-l40s", "4x Nvidia L40S GPU", "0.003900", 4, 40, 288, 192),
    ("gpu-8x-l40s", "8x Nvidia L40S GPU", "0.007800", 8, 80, 576, 384),
    ("gpu-a100-large", "Nvidia A100 (80GB) GPU", "0.001400", 1, 10, 144, 80),
    ("gpu-a100-large-2x", "2x Nvidia A100 (80GB) GPU", "0.002800", 2, 20, 288, 160),
    ("gpu-a100-large-4x", "4x Nvidia A100 (80GB) GPU", "0.005600", 4, 40, 576, 320),
    ("gpu-a100-large-8x", "8x Nvidia A100 (80GB) GPU", "0.011200", 8, 80, 960, 640),
    ("gpu-h100", "Nvidia H100 GPU", "0.001525", 1, None, None, 80),
    ("gpu-h100-2x", "2x Nvidia H100 GPU", "0.003050", 2, None, None, 160),
    ("gpu-h100-4x", "4x Nvidia H100 GPU", "0.006100", 4, None, None, 320),
    ("gpu-h100-8x", "8x Nvidia H100 GPU", "0.012200", 8, None, None, 640),
]


def seed(apps, schema_editor):
    Hardware = apps.get_model("catalog", "Hardware")
    for sku, name, price, gpus, cpus, memory, gpu_memory in HARDWARE:
        Hardware.objects.get_or_create(
            sku=sku,
            defaults={
                "name": name,
                "price_per_second": Decimal(price),
                "gpu_count": gpus,
                "cpu_count": cpus,
                "memory_gb": memory,
                "gpu_memory_gb": gpu_memory,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]

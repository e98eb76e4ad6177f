"""The prediction engine's scheduling state: pools, the instance registry, start requests,
placement and eviction. Everything here lives in Redis; the database stays the source of truth
for predictions and instances, and the reconciler repairs what a Redis loss leaves behind.

A *pool* is what a set of interchangeable instances serves: ``version:<id>`` (a version's shared
instances: every account's predictions on a public model) or ``deployment:<id>`` (a deployment's
own instances, whatever version it runs now). Everything about a pool lives under
``mk:pool:<pool>:``:

- ``q:jobs`` (hash prediction id → ``{"a": account, "s": sealed secrets}``): what is queued; its
  length is the queue depth.
- ``q:a:<account>`` (list of prediction ids) per account, and ``q:ring`` (list of the accounts
  that have queued work, in serving order). A pop serves the account at the head of the ring and
  moves it to the tail, so accounts take turns: one account's burst cannot starve another's
  single prediction. An account is in the ring exactly while its list is non-empty.
- ``q:signal`` (list): one token per queued prediction, for slots to block on (``BLPOP``); the
  queue itself is popped by a Lua script (one round trip), since Lua cannot block.
- ``pending``, ``booting``, ``setup`` (sorted sets of start-request ids scored by expiry): asked
  for and not yet taken by an agent; taken, Cog server starting; Cog server up, running the
  model's ``setup()``. ``requests`` (hash instance id → request id) binds an instance to the
  request it answers until it registers.
- ``live`` (instance ids scored by registration expiry, refreshed by the agents' heartbeats):
  the instances that take work; only a live instance pops. ``draining``: instances finishing
  in-flight work before they stop (idle release, eviction, retirement, recycling); a heartbeat
  never moves one back to ``live``.
- ``floor``: live instances kept however idle (a deployment's ``min_instances``, set by the
  autoscaler); neither idleness nor eviction takes the pool below it.
- ``busy`` (hash instance id → predictions in flight), ``runs``/``setups`` (recent run and setup
  seconds) for the autoscaler and for queue estimates.

Outside the pools:

- ``mk:pools`` (set): pools with anything in them, for the autoscaler.
- ``mk:retire`` (set of instance ids): instances told to finish what they run and stop.
- ``mk:room:<sku>`` (hash host → ``room expiry``): how many more instances of that hardware each
  host could start now, counting idle instances it may evict (``placement``), reported by the
  agents; a prediction whose pool waits on a start request no host has room for is
  ``waiting_for_capacity``.
- Start requests travel as RQ jobs on per-hardware queues ``hw:<sku>`` (``starts``); host agents
  are RQ workers of the queues of their hardware and take them only while they have room.

Modules: ``pools`` (names and the fair queue), ``instances`` (the registry), ``starts`` (start
requests), ``placement`` (room and eviction), ``autoscaler``. The Lua scripts are the ``.lua``
files in ``lua/``, each one atomic round trip.
"""

"""Where notify keeps its state: :class:`~services.notify.store.base.NotifyStore`,
on Redis (:mod:`.redis_store`) or in memory (:mod:`.memory`, tests)."""

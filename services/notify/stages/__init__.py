"""The stages of a notification flush (see :mod:`services.notify.stages.base`)."""

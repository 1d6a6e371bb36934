from django.apps import AppConfig


class InspectionConfig(AppConfig):
    name = "inspection"
    verbose_name = "Rust inspection"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from inspection import checks  # noqa: F401  (registers the deploy checks)
        from inspection.services import triggers

        triggers.connect()
        # The queue ends a photo's lease when a person saves it (a PhotoEvent receiver).
        from inspection.services import queue  # noqa: F401

"""Create the three role groups and the `rust` label every team starts with."""

from django.db import migrations

ROLES = ("integration", "inspector", "supervisor")


def forwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Label = apps.get_model("inspection", "Label")
    for name in ROLES:
        Group.objects.get_or_create(name=name)
    Label.objects.get_or_create(name="rust", defaults={"color": "#e8590c"})


class Migration(migrations.Migration):
    dependencies = [
        ("inspection", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]

"""Box coordinates live in columns x_min..y_max: PostgreSQL reserves xmin/xmax.

0001 now creates those columns directly (a fresh PostgreSQL database could not
be created otherwise). A SQLite database made by the first 0001 still has
columns named xmin..ymax: this renames them, and does nothing elsewhere.
"""

from django.db import migrations

RENAMES = [("xmin", "x_min"), ("ymin", "y_min"), ("xmax", "x_max"), ("ymax", "y_max")]


def rename_old_columns(apps, schema_editor):
    connection = schema_editor.connection
    table = "inspection_box"
    with connection.cursor() as cursor:
        columns = {
            c.name for c in connection.introspection.get_table_description(cursor, table)
        }
    quote = schema_editor.quote_name
    for old, new in RENAMES:
        if old in columns and new not in columns:
            schema_editor.execute(
                f"ALTER TABLE {quote(table)} RENAME COLUMN {quote(old)} TO {quote(new)}"
            )


class Migration(migrations.Migration):
    dependencies = [("inspection", "0002_roles_and_rust_label")]

    operations = [migrations.RunPython(rename_old_columns, migrations.RunPython.noop)]

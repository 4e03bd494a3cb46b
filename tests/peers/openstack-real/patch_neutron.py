"""Makes neutron 29.0.0's migrations run on PostgreSQL: `neutron-db-manage upgrade heads`
otherwise stops at d553edeb540f (2025.2), which runs MySQL-only SQL (`ALTER TABLE ...
CONVERT TO CHARACTER SET utf8mb4`) and catches only OperationalError, not the
ProgrammingError PostgreSQL raises. Skips that migration on any other dialect.

Usage: patch_neutron.py VENV (idempotent; fails loudly when the file no longer matches)."""
import glob
import sys

MARK = "# alliance: MySQL-only SQL"
(path,) = glob.glob(sys.argv[1] + "/lib/python3*/site-packages/neutron/db/migration/alembic_migrations/"
                    "versions/2025.2/expand/d553edeb540f_tag_case_sensitive.py")
text = open(path).read()
if MARK not in text:
    text = text.replace("def upgrade():\n    try:",
                        f"def upgrade():\n    if op.get_bind().dialect.name != 'mysql':  {MARK}\n        return\n    try:", 1)
    if MARK not in text:
        sys.exit(f"patch_neutron.py: {path} changed; the patch no longer applies")
    with open(path, "w") as f:
        f.write(text)

"""full-text and trigram indexes for searching the catalogue (products/search.py)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

PostgreSQL keeps a weighted tsvector (the name A, the description B) in a
generated column with a GIN index, and pg_trgm GIN indexes on the name and
the description. SQLite keeps two FTS5 tables over the products table (its
rows are their content): ``products_words`` (unicode61: words) and
``products_text`` (trigram: any text), which triggers keep in step.
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

POSTGRESQL_UPGRADE = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "ALTER TABLE products ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
    " setweight(to_tsvector('simple'::regconfig, name), 'A')"
    " || setweight(to_tsvector('simple'::regconfig, description), 'B')) STORED",
    "CREATE INDEX ix_products_search_vector ON products USING gin (search_vector)",
    "CREATE INDEX ix_products_name_trigrams ON products USING gin (name gin_trgm_ops)",
    "CREATE INDEX ix_products_description_trigrams ON products"
    " USING gin (description gin_trgm_ops)",
)
POSTGRESQL_DOWNGRADE = (
    "DROP INDEX ix_products_description_trigrams",
    "DROP INDEX ix_products_name_trigrams",
    "ALTER TABLE products DROP COLUMN search_vector",  # and its index
)

FTS_TABLES = {
    # remove_diacritics 0: "cafe" does not find "café", as on PostgreSQL
    "products_words": "tokenize = 'unicode61 remove_diacritics 0', prefix = '2 3'",
    "products_text": "tokenize = 'trigram'",
}


def sqlite_upgrade():
    for table, options in FTS_TABLES.items():
        yield (f"CREATE VIRTUAL TABLE {table} USING fts5(name, description, "
               f"content = 'products', content_rowid = 'id', {options})")
        yield f"INSERT INTO {table} ({table}) VALUES ('rebuild')"
    add = "".join(f"INSERT INTO {table} (rowid, name, description) "
                  "VALUES (new.id, new.name, new.description); " for table in FTS_TABLES)
    remove = "".join(f"INSERT INTO {table} ({table}, rowid, name, description) "
                     "VALUES ('delete', old.id, old.name, old.description); "
                     for table in FTS_TABLES)
    yield f"CREATE TRIGGER products_search_insert AFTER INSERT ON products BEGIN {add}END"
    yield f"CREATE TRIGGER products_search_delete AFTER DELETE ON products BEGIN {remove}END"
    yield ("CREATE TRIGGER products_search_update AFTER UPDATE OF name, description "
           f"ON products BEGIN {remove}{add}END")


def sqlite_downgrade():
    for trigger in ("insert", "delete", "update"):
        yield f"DROP TRIGGER products_search_{trigger}"
    for table in FTS_TABLES:
        yield f"DROP TABLE {table}"


def upgrade() -> None:
    statements = (POSTGRESQL_UPGRADE if op.get_context().dialect.name == "postgresql"
                  else sqlite_upgrade())
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    statements = (POSTGRESQL_DOWNGRADE if op.get_context().dialect.name == "postgresql"
                  else sqlite_downgrade())
    for statement in statements:
        op.execute(statement)

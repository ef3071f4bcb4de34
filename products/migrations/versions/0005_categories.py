"""categories, and indexes for filtering and sorting the catalogue

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ACTIVE = text("deleted_at IS NULL")
INDEXES = {"ix_products_category": ["category", "id"], "ix_products_price": ["price", "id"],
           "ix_products_name": [sa.text("lower(name)"), "id"]}


def upgrade() -> None:
    # nullable: the release before writes products without it (expand first)
    op.add_column("products", sa.Column("category", sa.String(50), nullable=True))
    for name, columns in INDEXES.items():
        op.create_index(name, "products", columns, postgresql_where=ACTIVE, sqlite_where=ACTIVE)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="products")
    op.drop_column("products", "category")

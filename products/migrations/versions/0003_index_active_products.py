"""index active products

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

"""
from alembic import op
from sqlalchemy import text

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_products_active", "products", ["id"],
                    postgresql_where=text("deleted_at IS NULL"),
                    sqlite_where=text("deleted_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_products_active", table_name="products")

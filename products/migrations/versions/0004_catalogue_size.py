"""keep the catalogue's size

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalogue_size",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("products", sa.Integer(), nullable=False))
    op.execute("INSERT INTO catalogue_size (id, products) "
               "SELECT 1, count(*) FROM products WHERE deleted_at IS NULL")


def downgrade() -> None:
    op.drop_table("catalogue_size")

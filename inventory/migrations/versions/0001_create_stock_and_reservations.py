"""create stock and reservations

Revision ID: 0001
Revises:
Create Date: 2026-11-22

"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stock",
        sa.Column("product_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("on_hand", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.CheckConstraint("reserved >= 0", name="ck_stock_reserved_not_negative"),
        sa.CheckConstraint("on_hand >= reserved", name="ck_stock_reserved_within_on_hand"),
    )
    op.create_table(
        "reservations",
        sa.Column("order_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("short", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "reservation_lines",
        sa.Column("order_id", sa.Integer(),
                  sa.ForeignKey("reservations.order_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("product_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_reservation_lines_quantity"),
    )


def downgrade() -> None:
    op.drop_table("reservation_lines")
    op.drop_table("reservations")
    op.drop_table("stock")

"""create orders

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
        "orders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        # cents: see common.data.db.Money
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("short", sa.JSON(), nullable=True),
        sa.Column("payment_id", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_orders_user_id_id", "orders", ["user_id", "id"])
    op.create_index("ix_orders_status_expires_at", "orders", ["status", "expires_at"])
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.Integer(),
                  sa.ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_order_lines_quantity"),
        sa.CheckConstraint("unit_price > 0", name="ck_order_lines_unit_price"),
    )


def downgrade() -> None:
    op.drop_table("order_lines")
    op.drop_index("ix_orders_status_expires_at", "orders")
    op.drop_index("ix_orders_user_id_id", "orders")
    op.drop_table("orders")

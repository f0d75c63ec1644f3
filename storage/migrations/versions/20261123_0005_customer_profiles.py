"""customer profiles: profile fields, links, profile notes and incentives

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("address_as", sa.String(length=80), nullable=True))
    op.add_column("customers", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.add_column("customers", sa.Column("organisation", sa.String(length=200), nullable=True))
    op.add_column("customers", sa.Column("email", sa.String(length=320), nullable=True))
    op.add_column(
        "customers", sa.Column("email_verified", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("customers", sa.Column("tags", sa.JSON(), server_default="[]", nullable=False))
    op.add_column("customers", sa.Column("merged_into", sa.Integer(), nullable=True))
    op.create_index("ix_customers_email", "customers", ["email"])
    op.create_table(
        "profile_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ticket_number", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.ForeignKeyConstraint(["ticket_number"], ["tickets.number"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_profile_notes_customer", "profile_notes", ["customer_id", "id"])
    op.create_table(
        "incentives",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("ticket_number", sa.Integer(), nullable=True),
        sa.Column("what", sa.String(length=400), nullable=False),
        sa.Column("given_by", sa.String(length=200), nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.ForeignKeyConstraint(["ticket_number"], ["tickets.number"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incentives_customer", "incentives", ["customer_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_incentives_customer", table_name="incentives")
    op.drop_table("incentives")
    op.drop_index("ix_profile_notes_customer", table_name="profile_notes")
    op.drop_table("profile_notes")
    op.drop_index("ix_customers_email", table_name="customers")
    with op.batch_alter_table("customers") as batch:
        for column in ("merged_into", "tags", "email_verified", "email", "organisation", "timezone"):
            batch.drop_column(column)
        batch.drop_column("address_as")

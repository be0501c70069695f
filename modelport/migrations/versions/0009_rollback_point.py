"""rollback point: the champion's version before the last promote

Revision ID: 0009_rollback_point
Revises: 0008_mlflow_follow
Create Date: 2026-12-05 02:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009_rollback_point'
down_revision = '0008_mlflow_follow'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('registered_models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_champion', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('registered_models', schema=None) as batch_op:
        batch_op.drop_column('previous_champion')

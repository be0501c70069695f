"""ORM models, one module per domain. Importing this package registers every table."""

from modelport.models.tokens import ApiToken
from modelport.models.users import Role, User, UserSession

__all__ = ["ApiToken", "Role", "User", "UserSession"]

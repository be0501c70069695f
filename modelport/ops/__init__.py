"""Operations: logging, health and readiness, security headers."""

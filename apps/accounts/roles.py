"""The portal's roles. Each is a Django group of the same name."""

SUPPORT = "support"
PRODUCT = "product"
ADMIN = "admin"
ROLES = (SUPPORT, PRODUCT, ADMIN)

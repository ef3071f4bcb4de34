"""The orders service: an order's life from placement to payment."""

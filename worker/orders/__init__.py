"""An order's life: intake, placement decision, tracking, events."""

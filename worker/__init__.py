"""orderworker: executes order commands from RabbitMQ on exchanges and publishes events."""

"""RabbitMQ adapters (aio-pika): topology, confirmed publishing, consuming."""

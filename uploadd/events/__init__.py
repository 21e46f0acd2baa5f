"""Events: the bus seam (in-process or AMQP) and the outbox relay feeding it."""

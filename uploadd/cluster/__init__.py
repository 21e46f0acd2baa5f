"""The storage cluster: nodes, their health, placement, replication, repair."""

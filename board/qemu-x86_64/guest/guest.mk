# heartbeat guest (TODO)

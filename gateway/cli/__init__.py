"""Thin entry points: ``main(argv) -> int`` for gatewayd, gatewayctl and gateway-sim."""

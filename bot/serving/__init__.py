"""TF Serving adapter: implements core.ports.Fleet (GrpcFleet) and core.ports.VersionCatalog (LocalCatalog).

channel.py mTLS channels and the three RPCs; errors.py gRPC -> ServingError; targets.py static and dns:///
replicas; config_proto.py FleetConfig <-> ModelServerConfig and models.config; discovery.py + storage.py
versions on disk; fleet.py fan-out queries; preflight.py, steps.py, rollout.py, outcome.py the rollout.
Nothing here imports TensorFlow: protos/ is a wire-compatible subset compiled at install time.
"""

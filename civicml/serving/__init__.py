"""The model server: FastAPI app (app) over a data plane (dataplane, endpoints), request schemas from the
data contract, the Open Inference Protocol, auth, limits, A/B routing, the durable prediction log, hot reload."""

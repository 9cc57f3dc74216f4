"""gRPC servicers: proto in -> store call -> proto out. The only layer that imports grpc."""

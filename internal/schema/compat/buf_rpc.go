package compat

// The buf rules about RPCs, methods paired by name in services of the same
// full name: RPC_SAME_CLIENT_STREAMING, RPC_SAME_SERVER_STREAMING,
// RPC_SAME_IDEMPOTENCY_LEVEL, RPC_SAME_REQUEST_TYPE and
// RPC_SAME_RESPONSE_TYPE.

import (
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// rpcSameClientStreaming is buf's RPC_SAME_CLIENT_STREAMING.
func rpcSameClientStreaming(r *bufReport, previous, current *bufImage) {
	forEachMethodPair(previous, current, func(pm, cm protoreflect.MethodDescriptor) {
		if pm.IsStreamingClient() != cm.IsStreamingClient() {
			from, to := streamingWords(cm.IsStreamingClient())
			r.add(cm, `RPC %q on service %q changed from client %s to client %s.`, cm.Name(), cm.Parent().Name(), from, to)
		}
	})
}

// rpcSameServerStreaming is buf's RPC_SAME_SERVER_STREAMING.
func rpcSameServerStreaming(r *bufReport, previous, current *bufImage) {
	forEachMethodPair(previous, current, func(pm, cm protoreflect.MethodDescriptor) {
		if pm.IsStreamingServer() != cm.IsStreamingServer() {
			from, to := streamingWords(cm.IsStreamingServer())
			r.add(cm, `RPC %q on service %q changed from server %s to server %s.`, cm.Name(), cm.Parent().Name(), from, to)
		}
	})
}

func streamingWords(nowStreaming bool) (string, string) {
	if nowStreaming {
		return "unary", "streaming"
	}
	return "streaming", "unary"
}

// rpcSameIdempotencyLevel is buf's RPC_SAME_IDEMPOTENCY_LEVEL.
func rpcSameIdempotencyLevel(r *bufReport, previous, current *bufImage) {
	forEachMethodPair(previous, current, func(pm, cm protoreflect.MethodDescriptor) {
		prev, cur := idempotencyLevel(pm), idempotencyLevel(cm)
		if prev != cur {
			r.add(cm, `RPC %q on service %q changed option "idempotency_level" from %q to %q.`, cm.Name(), cm.Parent().Name(), prev.String(), cur.String())
		}
	})
}

func idempotencyLevel(m protoreflect.MethodDescriptor) descriptorpb.MethodOptions_IdempotencyLevel {
	if opts, ok := m.Options().(*descriptorpb.MethodOptions); ok {
		return opts.GetIdempotencyLevel()
	}
	return descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN
}

// rpcSameRequestType is buf's RPC_SAME_REQUEST_TYPE.
func rpcSameRequestType(r *bufReport, previous, current *bufImage) {
	forEachMethodPair(previous, current, func(pm, cm protoreflect.MethodDescriptor) {
		if pm.Input().FullName() != cm.Input().FullName() {
			r.add(cm, `RPC %q on service %q changed request type from %q to %q.`, cm.Name(), cm.Parent().Name(), pm.Input().FullName(), cm.Input().FullName())
		}
	})
}

// rpcSameResponseType is buf's RPC_SAME_RESPONSE_TYPE.
func rpcSameResponseType(r *bufReport, previous, current *bufImage) {
	forEachMethodPair(previous, current, func(pm, cm protoreflect.MethodDescriptor) {
		if pm.Output().FullName() != cm.Output().FullName() {
			r.add(cm, `RPC %q on service %q changed response type from %q to %q.`, cm.Name(), cm.Parent().Name(), pm.Output().FullName(), cm.Output().FullName())
		}
	})
}

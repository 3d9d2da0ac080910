/**
 * A call to another node that gets no answer must count as a failure for
 * that node's circuit breaker. Moleculer's own Timeout middleware wraps the
 * circuit breaker from the outside, so a silent node (killed, partitioned)
 * never trips the breaker and every request waits the whole timeout. User
 * middlewares sit inside the internal ones: this one rejects the remote call
 * itself when the timeout passes, the breaker sees it and opens, and later
 * calls fail at once (503) until the node answers again.
 */
import { Errors, type Context, type Middleware, type ServiceBroker } from "moleculer";

export function createRemoteTimeoutMiddleware(): Middleware {
	let broker: ServiceBroker;
	return {
		name: "RemoteTimeout",
		created(b: ServiceBroker) {
			broker = b;
		},
		remoteAction(next: (ctx: Context) => Promise<unknown>, action: any) {
			return function remoteTimeout(ctx: Context) {
				const timeout = (ctx.options.timeout ?? broker.options.requestTimeout) as number;
				if (!timeout || timeout <= 0) return next(ctx);
				return new Promise((resolve, reject) => {
					const timer = setTimeout(
						() => reject(new Errors.RequestTimeoutError({ action: action.name, nodeID: ctx.nodeID ?? "" })),
						timeout,
					);
					next(ctx).then(
						v => { clearTimeout(timer); resolve(v); },
						e => { clearTimeout(timer); reject(e); },
					);
				});
			};
		},
	} as Middleware;
}

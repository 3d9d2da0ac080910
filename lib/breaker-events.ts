/**
 * Moleculer raises `$circuit-breaker.opened` / `.closed` only on the node's
 * local bus. Every node forwards them to the mesh (node.breaker.opened /
 * node.breaker.closed) so the alerts service hears about a breaker opening on
 * any node: `node` is the caller whose breaker tripped, `target` the node
 * whose endpoint it stopped calling.
 */
import type { ServiceBroker } from "moleculer";
import type { BreakerEvent } from "../types/events";

export function forwardBreakerEvents(broker: ServiceBroker): void {
	const forward = (event: string) => (payload: { nodeID?: unknown; action?: unknown; service?: unknown }) => {
		const text = (v: unknown) => (typeof v === "string" ? v.slice(0, 200) : "");
		const action = text(payload?.action) || text((payload?.action as { name?: unknown } | undefined)?.name) || "?";
		const forwarded: BreakerEvent = { node: broker.nodeID, target: text(payload?.nodeID), action, service: text(payload?.service) };
		void broker.broadcast(event, forwarded).catch(() => undefined);
	};
	broker.localBus.on("$circuit-breaker.opened", forward("node.breaker.opened"));
	broker.localBus.on("$circuit-breaker.closed", forward("node.breaker.closed"));
}

/**
 * Calling a door actor: the call goes to the node that should own the door's
 * cabinet (placement.ts), and if another node holds the cabinet's lease right
 * now (the node set just changed) it follows the lease holder. Nothing has
 * happened on a NOT_OWNER answer, so following it is safe — unlike Moleculer's
 * retry middleware, which is off for exactly this reason.
 */
import type { Context, ServiceBroker } from "moleculer";
import { ownerOf } from "./placement";

export const DOORS_SERVICE = "doors";

/** Available nodes that run the doors service, sorted (the same list everywhere). */
export function doorsNodes(broker: ServiceBroker): string[] {
	const list = broker.registry.getServiceList({ onlyAvailable: true, skipInternal: true }) as { name: string; nodeID: string }[];
	return [...new Set(list.filter(s => s.name === DOORS_SERVICE).map(s => s.nodeID))].sort();
}

/** The lease owner token is `{nodeID}#{process id}`. */
export const nodeOfOwner = (owner: string) => owner.slice(0, owner.lastIndexOf("#"));

export async function callDoors<T>(
	caller: Pick<ServiceBroker, "call"> | Pick<Context, "call">,
	broker: ServiceBroker,
	action: string,
	params: Record<string, unknown>,
	cabinetId: string,
	opts: { timeout?: number; meta?: Record<string, unknown> } = {},
): Promise<T> {
	let target = ownerOf(cabinetId, doorsNodes(broker));
	for (let attempt = 0; ; attempt++) {
		try {
			return (await (caller.call as any)(`${DOORS_SERVICE}.${action}`, params, { ...opts, ...(target ? { nodeID: target } : {}) })) as T;
		} catch (err: any) {
			const heldBy = err?.type === "NOT_OWNER" ? (err.data?.heldBy as string | undefined) : undefined;
			const next = heldBy ? nodeOfOwner(heldBy) : undefined;
			if (!next || next === target || attempt >= 2) throw err;
			target = next;
		}
	}
}

/**
 * Which `doors` node should own a cabinet: rendezvous (highest random weight)
 * hashing over the live nodes. When a node joins or leaves, only the cabinets
 * it wins or held move (Moleculer's Shard strategy remaps many more, and is
 * skipped when the caller hosts the service). Placement only says where to
 * ask: the lease (door-store.ts) is what guarantees one owner.
 */
import crypto from "node:crypto";

function weight(nodeId: string, cabinetId: string): bigint {
	return crypto.createHash("sha1").update(nodeId).update("\0").update(cabinetId).digest().readBigUInt64BE(0);
}

/**
 * The last answer per cabinet and the node list it was for: the doors nodes
 * ask for every cabinet they hold every second, and the list rarely changes.
 */
const lastAnswers = new Map<string, { nodes: string; owner: string | undefined }>();
const MAX_REMEMBERED = 200_000;

/** The node that should own the cabinet, or undefined when there is none. */
export function ownerOf(cabinetId: string, nodeIds: readonly string[]): string | undefined {
	const nodes = nodeIds.join("\n");
	const last = lastAnswers.get(cabinetId);
	if (last && last.nodes === nodes) return last.owner;
	const owner = computeOwner(cabinetId, nodeIds);
	if (lastAnswers.size >= MAX_REMEMBERED) lastAnswers.clear();
	lastAnswers.set(cabinetId, { nodes, owner });
	return owner;
}

function computeOwner(cabinetId: string, nodeIds: readonly string[]): string | undefined {
	let best: string | undefined;
	let bestWeight = -1n;
	for (const n of nodeIds) {
		const w = weight(n, cabinetId);
		if (w > bestWeight || (w === bestWeight && best !== undefined && n < best)) {
			best = n;
			bestWeight = w;
		}
	}
	return best;
}

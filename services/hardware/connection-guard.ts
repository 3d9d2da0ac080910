/**
 * What the embedded broker checks before aedes sees a connection or its bytes.
 * Pure (no sockets, no timers), so the rules are tested on their own.
 *
 * aedes 0.51's parser (mqtt-packet) buffers a packet until all the bytes its
 * fixed header announces have arrived, with no upper bound, and neither takes
 * a maximum packet size: the guard follows the packets' framing itself.
 */

/**
 * Follows MQTT framing over a connection's bytes (MQTT 3.1.1 §2.2: one type
 * byte, then the remaining length in 1–4 bytes of 7 bits each, low first,
 * then that many bytes) and fails as soon as a packet announces a remaining
 * length over the limit, before any of its body is buffered. O(1) memory.
 */
export class PacketSizeGuard {
	private phase: "type" | "length" | "body" | "failed" = "type";
	private length = 0;
	private multiplier = 1;
	private left = 0;

	constructor(private readonly maxRemainingLength: number) {}

	/** Feeds the next bytes; false once a packet is too large or its length malformed (for good). */
	push(chunk: Uint8Array): boolean {
		let i = 0;
		while (i < chunk.length && this.phase !== "failed") {
			if (this.phase === "body") {
				const n = Math.min(this.left, chunk.length - i);
				this.left -= n;
				i += n;
				if (this.left === 0) this.phase = "type";
			} else if (this.phase === "type") {
				i++;
				this.phase = "length";
				this.length = 0;
				this.multiplier = 1;
			} else {
				const b = chunk[i++];
				this.length += (b & 0x7f) * this.multiplier;
				// Later length bytes only add: a partial length over the limit already decides.
				if (this.length > this.maxRemainingLength) this.phase = "failed";
				else if (b & 0x80) {
					this.multiplier *= 128;
					if (this.multiplier > 128 ** 3) this.phase = "failed"; // a 5th length byte: malformed
				} else {
					this.left = this.length;
					this.phase = this.left === 0 ? "type" : "body";
				}
			}
		}
		return this.phase !== "failed";
	}
}

export interface ConnectionLimits {
	/** Connections from one address that have not authenticated yet. */
	maxPendingPerAddress: number;
	/** Connections from one address in all. */
	maxConnectionsPerAddress: number;
}

/** One admitted connection; both calls are idempotent. */
export interface ConnectionTicket {
	/** The connection authenticated: it no longer counts as pending. */
	authenticated(): void;
	/** The connection closed. */
	release(): void;
}

/**
 * Connections per remote address, pending (not yet authenticated) and in all.
 * Memory follows the open connections: an address without any is forgotten.
 */
export class ConnectionCaps {
	private readonly byAddress = new Map<string, { pending: number; total: number }>();

	constructor(private readonly limits: ConnectionLimits) {}

	/** A new connection from `address`: its ticket, or which cap refuses it. */
	admit(address: string): ConnectionTicket | "pending" | "total" {
		const n = this.byAddress.get(address) ?? { pending: 0, total: 0 };
		if (n.total >= this.limits.maxConnectionsPerAddress) return "total";
		if (n.pending >= this.limits.maxPendingPerAddress) return "pending";
		n.pending++;
		n.total++;
		this.byAddress.set(address, n);
		let pending = true;
		let open = true;
		return {
			authenticated: () => {
				if (!pending || !open) return;
				pending = false;
				n.pending--;
			},
			release: () => {
				if (!open) return;
				open = false;
				if (pending) n.pending--;
				pending = false;
				if (--n.total === 0) this.byAddress.delete(address);
			},
		};
	}

	/** Open connections from `address` (tests, stats). */
	count(address: string): { pending: number; total: number } {
		const n = this.byAddress.get(address);
		return { pending: n?.pending ?? 0, total: n?.total ?? 0 };
	}
}

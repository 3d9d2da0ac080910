/**
 * Server-sent events on one HTTP response, bounded: what a reader has not
 * taken yet is held up to a number of events and bytes, then the reader is
 * told `overflow` and the stream ends. A slow or stalled reader can cost the
 * process at most its queue, never an unbounded buffer. No broker in here.
 */

/** One SSE frame: `event:` and a one-line JSON `data:` (JSON.stringify escapes every newline). */
export function sseFrame(event: string, data: unknown): string {
	return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** A comment line: ignored by readers, keeps proxies and idle timers from closing the stream. */
export const SSE_PING = ": ping\n\n";

/** What the writer needs of a response (ServerResponse satisfies it). */
export interface SseSink {
	write(chunk: string): boolean;
	end(chunk?: string): unknown;
	destroy(): unknown;
	on(event: "drain" | "close", listener: () => void): unknown;
	off(event: "drain" | "close", listener: () => void): unknown;
}

export interface QueueLimits {
	maxEvents: number;
	maxBytes: number;
}

export type CloseReason = "client" | "overflow" | "revoked" | "expired" | "shutdown";

/** How long a stream told to end may take to flush before its socket is cut (a stalled reader never flushes). */
export const END_GRACE_MS = 2000;

export class SseWriter {
	private readonly queue: string[] = [];
	private queuedBytes = 0;
	/** The socket did not take the last write (write() returned false): hold frames until it drains. */
	private blocked = false;
	private closedBy: CloseReason | null = null;
	private graceTimer?: NodeJS.Timeout;
	/** The most this stream ever held (tests assert the bound). */
	readonly peak = { events: 0, bytes: 0 };

	constructor(
		private readonly sink: SseSink,
		private readonly limits: QueueLimits,
		private readonly onClosed: (reason: CloseReason) => void,
	) {
		sink.on("drain", this.onDrain);
		sink.on("close", this.onClose);
	}

	get closed(): CloseReason | null {
		return this.closedBy;
	}

	get queued(): { events: number; bytes: number } {
		return { events: this.queue.length, bytes: this.queuedBytes };
	}

	/** Sends or queues a frame; a full queue ends the stream with `overflow`. False once closed. */
	send(frame: string): boolean {
		if (this.closedBy) return false;
		if (!this.blocked) {
			if (!this.sink.write(frame)) this.blocked = true;
			return true;
		}
		const bytes = Buffer.byteLength(frame);
		if (this.queue.length + 1 > this.limits.maxEvents || this.queuedBytes + bytes > this.limits.maxBytes) {
			this.close("overflow", sseFrame("overflow", { queuedEvents: this.queue.length, maxEvents: this.limits.maxEvents, maxBytes: this.limits.maxBytes }));
			return false;
		}
		this.queue.push(frame);
		this.queuedBytes += bytes;
		if (this.queue.length > this.peak.events) this.peak.events = this.queue.length;
		if (this.queuedBytes > this.peak.bytes) this.peak.bytes = this.queuedBytes;
		return true;
	}

	/**
	 * Ends the stream, with a last frame when given. The queue is dropped: the reader is told why instead. A
	 * reader that does not take even that is cut after END_GRACE_MS.
	 */
	close(reason: CloseReason, last?: string) {
		if (this.closedBy) return;
		this.closedBy = reason;
		this.queue.length = 0;
		this.queuedBytes = 0;
		this.sink.off("drain", this.onDrain);
		if (reason === "client") {
			this.sink.destroy();
		} else {
			this.sink.end(last);
			this.graceTimer = setTimeout(() => this.sink.destroy(), END_GRACE_MS);
			this.graceTimer.unref();
		}
		this.onClosed(reason);
	}

	private readonly onDrain = () => {
		this.blocked = false;
		while (this.queue.length && !this.blocked) {
			const frame = this.queue.shift()!;
			this.queuedBytes -= Buffer.byteLength(frame);
			if (!this.sink.write(frame)) this.blocked = true;
		}
	};

	private readonly onClose = () => {
		clearTimeout(this.graceTimer);
		this.sink.off("close", this.onClose);
		if (!this.closedBy) this.close("client");
	};
}

/**
 * The embedded MQTT broker (aedes) of `npm start`: the same authentication and
 * topic ACLs as production (mqtt-access.ts), TCP no-delay on every accepted
 * socket (a user waits for one request→ack round trip per door opening).
 *
 * A denied PUBLISH closes the offending connection (aedes has no way to drop
 * one silently); a denied SUBSCRIBE is answered with failure (0x80) and the
 * client stays connected.
 *
 * It shares its process with the API, so what a stranger can make it hold is
 * bounded (connection-guard.ts): a packet announcing more than maxPacketBytes
 * closes the connection before its body is buffered; a connection without a
 * CONNECT within connectTimeoutMs is closed (aedes' connectTimeout, 30 s by
 * default); one address may hold only so many unauthenticated connections,
 * and so many in all.
 */
import net from "node:net";
import { createBroker, type Client } from "aedes";
import type { MqttLimits } from "../../config";
import { ConnectionCaps, PacketSizeGuard, type ConnectionTicket } from "./connection-guard";
import { logSafe } from "../../lib/log-limiter";
import { authorizeMqtt, type MqttIdentity } from "./mqtt-access";

export interface EmbeddedBrokerStats {
	/** Connections the broker closed itself, by reason. */
	refused: { pendingCap: number; connectionCap: number; oversizedPacket: number; beforeConnect: number };
}

/** Why the broker refused or closed a connection, or refused a packet (metrics). */
export type DenialReason =
	| "bad_credentials" | "auth_unavailable" | "pending_cap" | "connection_cap" | "oversized_packet" | "no_connect" | "denied_publish" | "denied_subscribe";

export interface EmbeddedBroker {
	port: number;
	/** Whether its port still accepts connections. */
	readonly listening: boolean;
	/** Drops a client's connection (credentials rotated). */
	kick(clientId: string): boolean;
	stats(): EmbeddedBrokerStats;
	close(): Promise<void>;
}

export async function startEmbeddedBroker(opts: {
	port: number;
	host?: string;
	limits: MqttLimits;
	authenticate(clientId: string, username: string | undefined, password: string | undefined): Promise<MqttIdentity | null>;
	/** A refused connection or a denied action; `key` says whose (client id, or the address before authentication). */
	onDenied?(what: string, key: string, reason: DenialReason): void;
	/** An authenticated client connected (+1) or went away (-1). */
	onClient?(kind: MqttIdentity["kind"], delta: 1 | -1): void;
}): Promise<EmbeddedBroker> {
	const { limits } = opts;
	const identities = new WeakMap<Client, MqttIdentity>();
	const connections = new WeakMap<Client, { address: string; ticket: ConnectionTicket }>();
	const caps = new ConnectionCaps(limits);
	const refused: EmbeddedBrokerStats["refused"] = { pendingCap: 0, connectionCap: 0, oversizedPacket: 0, beforeConnect: 0 };
	const deny = (what: string, key: string, reason: DenialReason) => opts.onDenied?.(what, key, reason);
	const addressOf = (client: Client) => connections.get(client)?.address ?? "?";

	const aedes = createBroker({
		connectTimeout: limits.connectTimeoutMs,
		authenticate(client, username, password, done) {
			opts.authenticate(client.id, username, password?.toString("utf8")).then(
				who => {
					if (!who) {
						deny(`connect ${logSafe(client.id)} from ${addressOf(client)}: bad credentials`, addressOf(client), "bad_credentials");
						return done(Object.assign(new Error("Bad username or password"), { returnCode: 4 }), false);
					}
					identities.set(client, who);
					connections.get(client)?.ticket.authenticated();
					done(null, true);
				},
				() => {
					deny(`connect ${logSafe(client.id)} from ${addressOf(client)}: authentication unavailable`, addressOf(client), "auth_unavailable");
					done(Object.assign(new Error("Server unavailable"), { returnCode: 3 }), false);
				},
			);
		},
		authorizePublish(client, packet, done) {
			if (!client) return done(null); // the broker's own (last will, $SYS)
			const who = identities.get(client);
			if (who && authorizeMqtt(who, "publish", packet.topic)) return done(null);
			deny(`publish ${logSafe(client.id)} ${logSafe(packet.topic)}`, client.id, "denied_publish");
			done(new Error(`Publishing to ${packet.topic} is not allowed`));
		},
		authorizeSubscribe(client, sub, done) {
			const who = identities.get(client);
			if (who && authorizeMqtt(who, "subscribe", sub.topic)) return done(null, sub);
			deny(`subscribe ${logSafe(client.id)} ${logSafe(sub.topic)}`, client.id, "denied_subscribe");
			done(null, null); // granted 0x80: refused, still connected
		},
	});
	// Errors before a CONNECT was read: the connect timeout, or bytes that are not MQTT.
	aedes.on("connectionError", (client, err) => {
		refused.beforeConnect++;
		deny(`connection from ${addressOf(client)} closed before CONNECT: ${err.message}`, addressOf(client), "no_connect");
	});
	// aedes registers a client once it authenticated and unregisters it when it goes (a takeover too).
	aedes.on("client", client => {
		const who = identities.get(client);
		if (who) opts.onClient?.(who.kind, 1);
	});
	aedes.on("clientDisconnect", client => {
		const who = identities.get(client);
		if (who) opts.onClient?.(who.kind, -1);
	});

	const server = net.createServer(socket => {
		const address = socket.remoteAddress ?? "?";
		const ticket = caps.admit(address);
		if (typeof ticket === "string") {
			refused[ticket === "pending" ? "pendingCap" : "connectionCap"]++;
			const cap = ticket === "pending" ? `${limits.maxPendingPerAddress} unauthenticated` : `${limits.maxConnectionsPerAddress}`;
			deny(`connection from ${address} refused: already ${cap} connections from this address`, address, ticket === "pending" ? "pending_cap" : "connection_cap");
			socket.destroy();
			return;
		}
		socket.once("close", () => ticket.release());
		socket.setNoDelay(true);
		const client = aedes.handle(socket);
		connections.set(client, { address, ticket });
		// aedes reads in paused mode; a 'data' listener is handed each chunk as aedes reads it,
		// before its parser buffers it, without changing how aedes reads.
		const guard = new PacketSizeGuard(limits.maxPacketBytes);
		socket.on("data", (chunk: Buffer) => {
			if (guard.push(chunk) || socket.destroyed) return;
			refused.oversizedPacket++;
			const who = client.id ? ` (${logSafe(client.id)})` : "";
			deny(`connection from ${address}${who} closed: a packet over ${limits.maxPacketBytes} bytes`, address, "oversized_packet");
			socket.destroy();
		});
	});
	await new Promise<void>((resolve, reject) => {
		// A port taken: aedes' own timers (heartbeat, stats) would keep the process alive.
		const fail = (err: Error) => aedes.close(() => reject(err));
		server.once("error", fail);
		server.listen(opts.port, opts.host ?? "0.0.0.0", () => {
			server.off("error", fail);
			resolve();
		});
	});
	const port = (server.address() as net.AddressInfo).port;
	return {
		port,
		get listening() {
			return server.listening;
		},
		kick(clientId) {
			const c = (aedes as any).clients?.[clientId] as Client | undefined;
			if (!c) return false;
			c.close();
			return true;
		},
		stats: () => ({ refused: { ...refused } }),
		async close() {
			await new Promise<void>(resolve => aedes.close(() => resolve()));
			await new Promise<void>(resolve => server.close(() => resolve()));
		},
	};
}

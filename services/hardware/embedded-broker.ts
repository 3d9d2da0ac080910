/**
 * The embedded MQTT broker (aedes) of `npm start`: the same authentication and
 * topic ACLs as production (mqtt-access.ts), TCP no-delay on every accepted
 * socket (a user waits for one request→ack round trip per door opening).
 *
 * A denied PUBLISH closes the offending connection (aedes has no way to drop
 * one silently); a denied SUBSCRIBE is answered with failure (0x80) and the
 * client stays connected.
 */
import net from "node:net";
import { createBroker, type Client } from "aedes";
import { authorizeMqtt, type MqttIdentity } from "./mqtt-access";

export interface EmbeddedBroker {
	port: number;
	/** Drops a client's connection (credentials rotated). */
	kick(clientId: string): boolean;
	close(): Promise<void>;
}

export async function startEmbeddedBroker(opts: {
	port: number;
	host?: string;
	authenticate(clientId: string, username: string | undefined, password: string | undefined): Promise<MqttIdentity | null>;
	onDenied?(what: string): void;
}): Promise<EmbeddedBroker> {
	const identities = new WeakMap<Client, MqttIdentity>();
	const aedes = createBroker({
		authenticate(client, username, password, done) {
			opts.authenticate(client.id, username, password?.toString("utf8")).then(
				who => {
					if (!who) {
						opts.onDenied?.(`connect ${client.id}`);
						return done(Object.assign(new Error("Bad username or password"), { returnCode: 4 }), false);
					}
					identities.set(client, who);
					done(null, true);
				},
				() => done(Object.assign(new Error("Server unavailable"), { returnCode: 3 }), false),
			);
		},
		authorizePublish(client, packet, done) {
			if (!client) return done(null); // the broker's own (last will, $SYS)
			const who = identities.get(client);
			if (who && authorizeMqtt(who, "publish", packet.topic)) return done(null);
			opts.onDenied?.(`publish ${client.id} ${packet.topic}`);
			done(new Error(`Publishing to ${packet.topic} is not allowed`));
		},
		authorizeSubscribe(client, sub, done) {
			const who = identities.get(client);
			if (who && authorizeMqtt(who, "subscribe", sub.topic)) return done(null, sub);
			opts.onDenied?.(`subscribe ${client.id} ${sub.topic}`);
			done(null, null); // granted 0x80: refused, still connected
		},
	});
	const server = net.createServer(socket => {
		socket.setNoDelay(true);
		aedes.handle(socket);
	});
	await new Promise<void>((resolve, reject) => {
		server.once("error", reject);
		server.listen(opts.port, opts.host ?? "0.0.0.0", () => {
			server.off("error", reject);
			resolve();
		});
	});
	const port = (server.address() as net.AddressInfo).port;
	return {
		port,
		kick(clientId) {
			const c = (aedes as any).clients?.[clientId] as Client | undefined;
			if (!c) return false;
			c.close();
			return true;
		},
		async close() {
			await new Promise<void>(resolve => aedes.close(() => resolve()));
			await new Promise<void>(resolve => server.close(() => resolve()));
		},
	};
}

/**
 * Who may connect to the MQTT broker and what they may do there — the one
 * decision behind both the embedded aedes broker and EMQX's HTTP hooks
 * (PROTOCOL.md "Access control"):
 * - the platform's own account (hardware bridge, door actors) has full access;
 * - a cabinet connects with clientId = username = its id and its secret, may
 *   publish only its own report topics and subscribe only its own cmd topic;
 * - everything else is refused.
 */
import crypto from "node:crypto";
import { cabinetMayPublish, cabinetMaySubscribe, isCabinetId } from "../../domain/protocol";

export type MqttIdentity = { kind: "platform" } | { kind: "cabinet"; cabinetId: string };

export interface MqttCredentials {
	clientId: string;
	username?: string;
	password?: string;
}

export interface AccessDeps {
	platform: { username: string; password: string };
	/** Constant-time check of a cabinet's secret (merchants.verifyCabinet). */
	verifyCabinet(cabinetId: string, password: string): Promise<boolean>;
}

function sameSecret(a: string, b: string): boolean {
	const ha = crypto.createHash("sha256").update(a).digest();
	const hb = crypto.createHash("sha256").update(b).digest();
	return crypto.timingSafeEqual(ha, hb);
}

export async function authenticateMqtt(c: MqttCredentials, deps: AccessDeps): Promise<MqttIdentity | null> {
	const { username, password } = c;
	if (!username || password === undefined || password.length === 0 || password.length > 200) return null;
	if (username === deps.platform.username) return sameSecret(password, deps.platform.password) ? { kind: "platform" } : null;
	if (!isCabinetId(username) || c.clientId !== username) return null;
	return (await deps.verifyCabinet(username, password)) ? { kind: "cabinet", cabinetId: username } : null;
}

export function authorizeMqtt(who: MqttIdentity, action: "publish" | "subscribe", topic: string): boolean {
	if (who.kind === "platform") return true;
	return action === "publish" ? cabinetMayPublish(who.cabinetId, topic) : cabinetMaySubscribe(who.cabinetId, topic);
}

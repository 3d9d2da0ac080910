/**
 * What the platform asks of EMQX's REST API (v5): disconnecting a cabinet
 * whose credentials were rotated, so it must reconnect with the new secret.
 * Authentication is an EMQX API key and secret (HTTP Basic).
 */
export interface EmqxApi {
	/** e.g. http://emqx:18083 */
	url: string;
	key: string;
	secret: string;
}

/** Kicks a client; true when EMQX dropped it or it was not connected (404). */
export async function kickEmqxClient(api: EmqxApi, clientId: string, fetchImpl: typeof fetch = fetch): Promise<boolean> {
	const res = await fetchImpl(`${api.url.replace(/\/+$/, "")}/api/v5/clients/${encodeURIComponent(clientId)}`, {
		method: "DELETE",
		headers: { authorization: `Basic ${Buffer.from(`${api.key}:${api.secret}`).toString("base64")}` },
		signal: AbortSignal.timeout(5000),
	});
	await res.arrayBuffer();
	if (res.status === 204 || res.status === 404) return true;
	throw new Error(`EMQX answered ${res.status} to kicking ${clientId}`);
}

// A Cronhook webhook receiver that verifies each request's signature.
//
//     npm ci
//     WEBHOOK_SECRET=whsec_... PORT=8000 node receiver.mjs
//
// The secret is the job's (`GET /v1/jobs/{id}/secret`, or the `secret` the
// job was created with). Verify the raw bytes before reading them; a job's
// body may be JSON, a plain string or nothing at all, so verify with
// `jsonParse: false` and read the body yourself.
import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";

const webhook = new Webhook(process.env.WEBHOOK_SECRET);

const server = createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    const body = Buffer.concat(chunks);
    const id = request.headers["webhook-id"];
    try {
      webhook.verify(body, request.headers, { jsonParse: false });
    } catch (e) {
      console.log(`rejected ${id}: ${e.message}`);
      response.writeHead(401).end();
      return;
    }
    let kind;
    if (body.length === 0) {
      kind = "empty";
    } else if ((request.headers["content-type"] ?? "").startsWith("application/json")) {
      try {
        JSON.parse(body.toString("utf8")); // your job's JSON body
      } catch {
        response.writeHead(400).end();
        return;
      }
      kind = "json";
    } else {
      body.toString("utf8"); // a string body, as the job gave it
      kind = "text";
    }
    // webhook-id is the run's id, the same on every retry: do the work
    // once per id.
    console.log(`verified ${id} ${kind}`);
    response.writeHead(204).end();
  });
});

server.listen(Number(process.env.PORT ?? 8000), "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${server.address().port}`);
});

// The official TypeScript ingress client against the lab: run by tests/system/interop/test_clients.py
// with NODE_PATH=.tools/node_modules. Prints one JSON object: for each step, its result or error.
const clients = require("@restatedev/restate-sdk-clients");

const [url, trip, pkg, idempotencyKey] = process.argv.slice(2);
const ingress = clients.connect({ url });
const json = clients.serde.json;
const booking = {
  flights: { flight_id: "12345", passenger_name: "John Doe" },
  car: { pickup_location: "Airport", rental_date: "2024-12-16" },
  payment_info: { card_number: "5555555555554444", amount: 1500 },
};
const greeting = { name: "Ada", delay_seconds: 0 };
const steps = {
  // The client's workflow convention: a main handler named "run" (ours is "Run").
  workflowSubmit: () => ingress.workflowClient({ name: "BookingWorkflow" }, `${trip}-default`)
    .workflowSubmit(booking).then((s) => s.invocationId),
  // The one-line workaround: send to "Run" by name, then attach as usual.
  sendRun: () => ingress.send({ service: "BookingWorkflow", handler: "Run", key: trip,
    parameter: booking, opts: clients.rpc.sendOpts({ input: json }) }).then((s) => s.invocationId),
  workflowAttach: () => ingress.workflowClient({ name: "BookingWorkflow" }, trip).workflowAttach(),
  register: () => ingress.objectClient({ name: "PackageTracker" }, pkg)
    .RegisterPackage({ finalDestination: "Bridge 6, Amsterdam" }),
  getPackageInfoPlain: () => ingress.objectClient({ name: "PackageTracker" }, pkg).getPackageInfo(),
  getPackageInfo: () => ingress.objectClient({ name: "PackageTracker" }, pkg)
    .getPackageInfo(clients.rpc.opts({ input: clients.serde.empty })),
  idempotentSend1: () => ingress.serviceSendClient({ name: "Greeter" })
    .greet(greeting, clients.rpc.sendOpts({ idempotencyKey })).then((s) => s.invocationId),
  idempotentSend2: () => ingress.serviceSendClient({ name: "Greeter" })
    .greet(greeting, clients.rpc.sendOpts({ idempotencyKey })).then((s) => s.invocationId),
  idempotentCall: () => ingress.serviceClient({ name: "Greeter" })
    .greet(greeting, clients.rpc.opts({ idempotencyKey })),
};

(async () => {
  const out = {};
  for (const [name, step] of Object.entries(steps)) {
    try {
      out[name] = { ok: (await step()) ?? null };
    } catch (error) {
      out[name] = { error: String(error.message ?? error), status: error.status ?? null };
    }
  }
  console.log(JSON.stringify(out));
})();

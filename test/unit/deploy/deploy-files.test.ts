/**
 * Guards the deployment files and operations docs against drift from the code: every env name the config
 * parses is documented (and the docs list no stale one), the deployment files use only names the config
 * knows, the Grafana dashboard queries only metrics the relay exports, the compose file and the Kubernetes and
 * Porter YAML parse and expose what docs/deployment.md says (ports, probes, drain, autoscaling 2–20 at 70 %).
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { createRelayMetrics } from '../../../src/relay/metrics.ts';
import { RtmpServer } from '../../../src/rtmp/server.ts';
import { loadConfig } from '../../../src/shared/config.ts';
import { silentLogger } from '../../../src/shared/logger.ts';
import type { StreamRegistry } from '../../../src/stream/registry.ts';

const read = (file: string): string => readFileSync(new URL(`../../../${file}`, import.meta.url), 'utf8');

/** Names read by deployment tooling rather than by `loadConfig` (see docs/configuration.md). */
const IMAGE_ENV = new Set(['HEALTHCHECK_URL']);

/**
 * The env names `EnvSchema` parses: `loadConfig` reads each of its keys from the env it is given, so a proxy
 * that records its reads lists them without the schema being exported.
 */
function envSchemaNames(): Set<string> {
  const seen = new Set<string>();
  const env = new Proxy({} as NodeJS.ProcessEnv, {
    get(_target, key) {
      if (typeof key === 'string' && /^[A-Z][A-Z0-9_]*$/.test(key)) seen.add(key);
      return undefined;
    },
  });
  loadConfig(env);
  return seen;
}

const ENV = envSchemaNames();

// Loose shapes of the parsed files: only what the checks read.
type Env = Record<string, string | number | boolean | null>;
interface ComposeService {
  image?: string;
  command?: string[];
  init?: boolean;
  ports?: string[];
  environment?: Env;
  stop_grace_period?: string;
  healthcheck?: { test?: string[] };
  depends_on?: Record<string, { condition?: string }>;
}
interface K8sProbe {
  httpGet?: { path?: string; port?: string | number };
}
interface K8sContainer {
  name: string;
  image: string;
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  env?: { name: string; value?: string }[];
  livenessProbe?: K8sProbe;
  readinessProbe?: K8sProbe;
  lifecycle?: { preStop?: { exec?: { command?: string[] } } };
  securityContext?: { allowPrivilegeEscalation?: boolean };
}
interface K8sObject {
  kind: string;
  metadata: { name: string };
  spec: {
    type?: string;
    selector?: Record<string, unknown>;
    ports?: { name?: string; port: number; protocol?: string; appProtocol?: string }[];
    minReplicas?: number;
    maxReplicas?: number;
    metrics?: { resource?: { name?: string; target?: { averageUtilization?: number } } }[];
    template?: {
      spec: {
        terminationGracePeriodSeconds?: number;
        securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
        containers: K8sContainer[];
      };
    };
  };
}
interface PorterService {
  name: string;
  type: string;
  port?: number;
  pathRouting?: { path: string; port: number }[];
  autoscaling?: {
    enabled?: boolean;
    minInstances?: number;
    maxInstances?: number;
    cpuThresholdPercent?: number;
  };
  livenessCheck?: { httpPath?: string };
  readinessCheck?: { httpPath?: string };
  healthCheck?: { httpPath?: string };
  terminationGracePeriodSeconds?: number;
  metricsScraping?: { port?: number };
  env?: Env;
}

function k8sObjects(file: string): K8sObject[] {
  const docs = parseAllDocuments(read(file));
  for (const doc of docs) assert.deepEqual(doc.errors, [], `${file} parses`);
  return docs.map((doc) => doc.toJS() as K8sObject).filter(Boolean);
}

/** How panels name the data source: Grafana's import placeholder, not a JS template. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's placeholder, literally
const DS_INPUT = '${DS_PROMETHEUS}';

const DRAIN_DEFAULT_SECONDS = 300; // DRAIN_TIMEOUT_SECONDS' default in src/shared/config.ts
const drainSeconds = (value: unknown): number =>
  value === undefined ? DRAIN_DEFAULT_SECONDS : Number(value);

test('every env name EnvSchema parses is documented in docs/configuration.md, and no stale one', () => {
  assert.ok(ENV.size >= 40 && ENV.has('RTMP_PORT') && ENV.has('LOG_LEVEL'), `found ${[...ENV].join(', ')}`);
  const doc = read('docs/configuration.md');
  const missing = [...ENV].filter((name) => !doc.includes(`\`${name}\``));
  assert.deepEqual(missing, [], 'env names missing from docs/configuration.md');

  // The tables before "Read outside" document the parsed names: each name in their first column must exist.
  const parsedPart = doc.slice(0, doc.indexOf('## Read outside'));
  const documented = parsedPart
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .flatMap((line) => [...(line.split('|')[1] ?? '').matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!));
  assert.ok(documented.length >= ENV.size);
  const stale = documented.filter((name) => !ENV.has(name));
  assert.deepEqual(stale, [], 'documented names that src/shared/config.ts no longer parses');
});

test('the Grafana dashboard queries only metrics the relay exports, through a DS_PROMETHEUS input', async () => {
  const dashboard = JSON.parse(read('deploy/grafana/rtmp-relay.json')) as {
    schemaVersion: number;
    __inputs: { name: string; type: string; pluginId: string }[];
    templating: { list: { name: string; definition?: string }[] };
    panels: {
      type: string;
      title: string;
      datasource?: { uid: string };
      targets?: { expr: string; datasource?: { uid: string } }[];
    }[];
  };
  assert.ok(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41);
  assert.ok(
    dashboard.__inputs.some((i) => i.name === 'DS_PROMETHEUS' && i.pluginId === 'prometheus'),
    'a DS_PROMETHEUS data source input',
  );
  assert.ok(
    dashboard.templating.list.some((v) => v.name === 'instance'),
    'a relay (instance) variable',
  );

  const rtmp = new RtmpServer({ log: silentLogger() });
  const streams = Object.assign(new EventEmitter(), { streams: [] });
  const metrics = createRelayMetrics({ rtmp, streams: streams as unknown as StreamRegistry });
  const exported = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
  metrics.close();
  assert.ok(exported.has('rtmp_relay_streams') && exported.has('process_cpu_seconds_total'));

  const queries = [
    ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr }))),
    ...dashboard.templating.list.flatMap((v) =>
      v.definition ? [{ title: v.name, expr: v.definition }] : [],
    ),
  ];
  assert.ok(queries.length >= 30);
  const used = new Set<string>();
  for (const { title, expr } of queries) {
    for (const [name] of expr.matchAll(/\b(?:rtmp_relay|process|nodejs)_[a-z0-9_]+/g)) {
      used.add(exported.has(name) ? name : name.replace(/_(bucket|sum|count)$/, ''));
    }
    // Every query of the relays' own metrics follows the relay variable.
    if (/\b(rtmp_relay|process|nodejs)_/.test(expr) && !expr.startsWith('label_values')) {
      assert.match(expr, /instance=~"\$instance"/, `"${title}" filters on $instance: ${expr}`);
    }
  }
  const unknown = [...used].filter((name) => !exported.has(name));
  assert.deepEqual(unknown, [], 'dashboard metrics the relay does not export');
  // The dashboard covers what operators asked for.
  for (const name of [
    'rtmp_relay_streams',
    'rtmp_relay_publishes_total',
    'rtmp_relay_unpublishes_total',
    'rtmp_relay_auth_refusals_total',
    'rtmp_relay_rtmp_errors_total',
    'rtmp_relay_stream_ingest_bitrate_bits_per_second',
    'rtmp_relay_stream_ingest_fps',
    'rtmp_relay_stream_keyframe_interval_seconds',
    'rtmp_relay_stream_viewers',
    'rtmp_relay_time_to_first_segment_seconds',
    'rtmp_relay_hls_segment_production_seconds',
    'rtmp_relay_hls_request_duration_seconds',
    'rtmp_relay_ffmpeg_restarts_total',
    'rtmp_relay_ffmpeg_crashes_total',
    'rtmp_relay_timestamp_repairs_total',
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
  ]) {
    assert.ok(used.has(name), `the dashboard shows ${name}`);
  }
  for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
    assert.equal(panel.datasource?.uid, DS_INPUT, `"${panel.title}" uses the input`);
  }
});

test('docker-compose.yml: redis, cloud and relay, health-gated, secrets from .env, ports and drain', () => {
  const compose = parse(read('docker-compose.yml'), { merge: true }) as {
    services: Record<string, ComposeService>;
  };
  const { redis, cloud, relay } = compose.services;
  assert.ok(redis && cloud && relay, 'services redis, cloud, relay');

  assert.match(redis.image ?? '', /^redis:\d+\.\d+\.\d+/, 'redis image pinned to a patch version');
  assert.deepEqual(redis.healthcheck?.test?.slice(-2), ['redis-cli', 'ping']);
  assert.deepEqual(cloud.command, ['cloud']);
  assert.deepEqual(relay.command, ['relay']);
  assert.equal(cloud.depends_on?.redis?.condition, 'service_healthy');
  assert.equal(relay.depends_on?.cloud?.condition, 'service_healthy');
  assert.ok(cloud.healthcheck?.test?.join(' ').includes('127.0.0.1:8080/health'));
  assert.ok(relay.healthcheck?.test?.join(' ').includes('127.0.0.1:8888/health'));
  assert.equal(relay.init, true, 'an init reaps orphans');

  const containerPorts = (ports: string[] = []): number[] =>
    ports.map((p) => Number(p.split('/')[0]!.split(':').at(-1)));
  for (const port of [1935, 8888, 8890, 9997, 9998, 8189])
    assert.ok(containerPorts(relay.ports).includes(port), `${port}`);
  assert.ok(relay.ports?.includes('8890:8890/udp'), 'SRT is UDP');
  assert.ok(relay.ports?.includes('8189:8189/udp'), 'WebRTC is UDP');
  assert.ok(containerPorts(cloud.ports).includes(8080));

  const env = relay.environment ?? {};
  assert.equal(env.CLOUD_API_URL, 'http://cloud:8080');
  assert.match(String(env.RELAY_PUBLIC_URL), /localhost/);
  assert.equal(cloud.environment?.REDIS_URL, 'redis://redis:6379');
  const grace = /^(?:(\d+)m)?(?:(\d+)s)?$/.exec(relay.stop_grace_period ?? '');
  assert.ok(grace, 'stop_grace_period in m/s');
  const graceSeconds = Number(grace[1] ?? 0) * 60 + Number(grace[2] ?? 0);
  assert.ok(
    graceSeconds > drainSeconds(env.DRAIN_TIMEOUT_SECONDS),
    'stop_grace_period > DRAIN_TIMEOUT_SECONDS',
  );

  // Secrets only from .env, required (compose refuses to start without them); every name is a real one.
  for (const [name, service] of [
    ['cloud', cloud],
    ['relay', relay],
  ] as const) {
    for (const secret of ['RELAY_SHARED_SECRET', 'PUBLISH_TOKEN_SECRET', 'CONTROL_API_TOKEN']) {
      assert.match(
        String(service.environment?.[secret]),
        new RegExp(`^\\$\\{${secret}:\\?`),
        `${name} ${secret}`,
      );
    }
    const unknown = Object.keys(service.environment ?? {}).filter((k) => !ENV.has(k) && !IMAGE_ENV.has(k));
    assert.deepEqual(unknown, [], `${name}: env names the config does not know`);
  }

  const example = read('deploy/compose.env.example');
  assert.match(example, /openssl rand -base64 32/);
  for (const secret of ['RELAY_SHARED_SECRET', 'PUBLISH_TOKEN_SECRET', 'CONTROL_API_TOKEN']) {
    assert.match(example, new RegExp(`^${secret}=$`, 'm'), `${secret} is an empty placeholder`);
  }
  assert.match(read('.dockerignore'), /^\.env$/m, '.env never enters the image');
});

test('Kubernetes: relay Deployment, TCP LoadBalancer 1935, HTTP 8888, probes, drain, HPA 2–20 at 70 %', () => {
  const relayObjects = k8sObjects('deploy/k8s/relay.yaml');
  const byKind = (kind: string): K8sObject[] => relayObjects.filter((o) => o.kind === kind);

  const [deployment] = byKind('Deployment');
  assert.ok(deployment?.spec.template);
  const pod = deployment.spec.template.spec;
  const relay = pod.containers.find((c) => c.name === 'relay')!;
  assert.deepEqual(relay.ports?.map((p) => p.containerPort).sort(), [1935, 8189, 8888, 8890, 9997, 9998]);
  assert.equal(relay.ports?.find((p) => p.containerPort === 8890)?.protocol, 'UDP', 'SRT is UDP');
  assert.equal(relay.ports?.find((p) => p.containerPort === 8189)?.protocol, 'UDP', 'WebRTC is UDP');
  assert.equal(relay.livenessProbe?.httpGet?.path, '/health');
  assert.equal(relay.readinessProbe?.httpGet?.path, '/ready');
  assert.equal(pod.securityContext?.runAsNonRoot, true);
  assert.equal(relay.securityContext?.allowPrivilegeEscalation, false);
  const preStop = relay.lifecycle?.preStop?.exec?.command ?? [];
  assert.equal(preStop[0], 'sleep', 'a preStop pause');
  const drain = drainSeconds(relay.env?.find((e) => e.name === 'DRAIN_TIMEOUT_SECONDS')?.value);
  assert.ok(
    (pod.terminationGracePeriodSeconds ?? 30) > drain + Number(preStop[1] ?? 0),
    'terminationGracePeriodSeconds > DRAIN_TIMEOUT_SECONDS + preStop',
  );

  const services = byKind('Service');
  const balancers = services.filter((s) => s.spec.type === 'LoadBalancer');
  assert.ok(
    balancers.some((s) => s.spec.ports?.some((p) => p.port === 1935 && p.protocol === 'TCP')),
    'a TCP LoadBalancer for RTMP 1935',
  );
  assert.ok(
    balancers.some((s) => s.spec.ports?.some((p) => p.port === 8890 && p.protocol === 'UDP')),
    'a UDP LoadBalancer port for SRT 8890',
  );
  assert.ok(
    balancers.some((s) => s.spec.ports?.some((p) => p.port === 8189 && p.protocol === 'UDP')),
    'a UDP LoadBalancer port for WebRTC 8189',
  );
  assert.ok(
    services.some((s) => s.spec.ports?.some((p) => p.port === 8888 && p.appProtocol === 'http')),
    'an HTTP Service for HLS 8888',
  );
  for (const balancer of balancers) {
    for (const port of balancer.spec.ports ?? []) {
      assert.ok(![9997, 9998].includes(port.port), `${port.port} stays off the public LoadBalancer`);
    }
  }

  const [hpa] = byKind('HorizontalPodAutoscaler');
  assert.equal(hpa?.spec.minReplicas, 2);
  assert.equal(hpa?.spec.maxReplicas, 20);
  const cpu = hpa?.spec.metrics?.find((m) => m.resource?.name === 'cpu');
  assert.equal(cpu?.resource?.target?.averageUtilization, 70);

  const cloudObjects = k8sObjects('deploy/k8s/cloud.yaml');
  const cloud = cloudObjects.find((o) => o.kind === 'Deployment')?.spec.template?.spec.containers[0];
  assert.equal(cloud?.livenessProbe?.httpGet?.path, '/health');
  assert.deepEqual(
    cloud?.ports?.map((p) => p.containerPort),
    [8080],
  );

  const redis = k8sObjects('deploy/k8s/redis.yaml');
  assert.ok(redis.some((o) => o.kind === 'Service' && o.metadata.name === 'rtmp-relay-redis'));

  // Our containers use only env names the config knows.
  for (const container of [relay, cloud!]) {
    const unknown = (container.env ?? []).map((e) => e.name).filter((n) => !ENV.has(n) && !IMAGE_ENV.has(n));
    assert.deepEqual(unknown, [], `${container.name}: env names the config does not know`);
  }
});

test('porter.yaml: relay on 8888 with 9997 routed, autoscaling 2–20 at 70 % CPU, RTMP Service on 1935', () => {
  const porter = parse(read('deploy/porter.yaml')) as {
    version: string;
    name: string;
    envGroups?: string[];
    env?: Env;
    services: PorterService[];
  };
  assert.equal(porter.version, 'v2');
  assert.ok((porter.envGroups ?? []).length > 0, 'secrets from an env group');
  const relay = porter.services.find((s) => s.name === 'relay')!;
  const cloud = porter.services.find((s) => s.name === 'cloud')!;
  assert.equal(relay.type, 'web');
  assert.equal(relay.port, 8888);
  assert.ok(relay.pathRouting?.some((r) => r.port === 8888 && r.path === '/'));
  assert.ok(relay.pathRouting?.some((r) => r.port === 9997));
  assert.equal(relay.metricsScraping?.port, 9998);
  assert.deepEqual(
    {
      enabled: relay.autoscaling?.enabled,
      min: relay.autoscaling?.minInstances,
      max: relay.autoscaling?.maxInstances,
      cpu: relay.autoscaling?.cpuThresholdPercent,
    },
    { enabled: true, min: 2, max: 20, cpu: 70 },
  );
  assert.equal(relay.livenessCheck?.httpPath, '/health');
  assert.equal(relay.readinessCheck?.httpPath, '/ready');
  assert.ok((relay.terminationGracePeriodSeconds ?? 30) > drainSeconds(relay.env?.DRAIN_TIMEOUT_SECONDS));
  assert.equal(cloud.port, 8080);
  assert.equal(cloud.healthCheck?.httpPath, '/health');
  for (const env of [porter.env, relay.env, cloud.env]) {
    const unknown = Object.keys(env ?? {}).filter((k) => !ENV.has(k) && !IMAGE_ENV.has(k));
    assert.deepEqual(unknown, [], 'porter.yaml env names the config does not know');
  }

  // RTMP, which Porter cannot declare: a TCP LoadBalancer on the relay service's pods.
  const [rtmp] = k8sObjects('deploy/porter-rtmp-service.yaml');
  assert.equal(rtmp?.spec.type, 'LoadBalancer');
  assert.ok(rtmp?.spec.ports?.some((p) => p.port === 1935 && p.protocol === 'TCP'));
  assert.deepEqual(rtmp?.spec.selector, {
    'porter.run/app-name': porter.name,
    'porter.run/service-name': 'relay',
  });
});

test('Dockerfile pins Node and FFmpeg, runs as non-root with a health check', () => {
  const dockerfile = read('Dockerfile');
  assert.match(dockerfile, /^ARG NODE_VERSION=20\.\d+\.\d+$/m);
  assert.match(dockerfile, /^FROM node:\$\{NODE_VERSION\}-bookworm-slim$/m);
  assert.match(dockerfile, /^ARG FFMPEG_VERSION=\S+$/m);
  assert.match(dockerfile, /"ffmpeg=\$\{FFMPEG_VERSION\}"/);
  assert.match(dockerfile, /^USER node$/m);
  assert.match(dockerfile, /^HEALTHCHECK /m);
  const exposed = /^EXPOSE (.+)$/m.exec(dockerfile)?.[1]?.split(/\s+/) ?? [];
  for (const port of ['1935', '8890/udp', '8888', '9997', '9998', '8189/udp', '8080'])
    assert.ok(exposed.includes(port), `EXPOSE ${port}`);
});

test('README and docs/deployment.md link the configuration and capacity docs', () => {
  for (const [file, prefix] of [
    ['README.md', 'docs/'],
    ['docs/deployment.md', ''],
  ] as const) {
    const text = read(file);
    for (const doc of ['configuration.md', 'capacity.md']) {
      assert.ok(text.includes(`](${prefix}${doc}`), `${file} links ${doc}`);
    }
  }
  const capacity = read('docs/capacity.md');
  for (const bench of [
    'bench/rtmp-parse.ts',
    'bench/hls-pipeline.ts',
    'bench/placement.ts',
    'npm run bench',
  ]) {
    assert.ok(capacity.includes(bench), `capacity.md says how to re-measure with ${bench}`);
  }
});

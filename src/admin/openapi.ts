// GET /api/openapi.json: the API described in OpenAPI 3.1, built from the routes as registered (their
// JSON schemas are the ones Fastify validates with), so the description cannot drift from the code.

export interface RouteDoc {
  readonly method: string;
  readonly url: string;
  readonly schema: Readonly<Record<string, unknown>>;
  readonly public: boolean;
}

const PROBLEM = {
  description: 'An RFC 9457 problem',
  content: {
    'application/problem+json': {
      schema: {
        type: 'object',
        properties: {
          type: { type: 'string' },
          title: { type: 'string' },
          status: { type: 'integer' },
          detail: { type: 'string' },
          instance: { type: 'string' },
        },
      },
    },
  },
};

/** Fastify's `:id` and `*` path parts in OpenAPI's `{id}` form. */
function pathOf(url: string): string {
  return url.replace(/:([A-Za-z]+)/g, '{$1}').replace(/\*$/, '{path}');
}

function parameters(schema: Readonly<Record<string, unknown>>, where: 'path' | 'query'): unknown[] {
  const s = schema[where === 'path' ? 'params' : 'querystring'] as
    { properties?: Record<string, unknown>; required?: string[] } | undefined;
  if (s?.properties === undefined) return [];
  return Object.entries(s.properties).map(([name, p]) => ({
    name,
    in: where,
    required: where === 'path' || (s.required ?? []).includes(name),
    schema: p,
  }));
}

export function buildOpenApi(routes: readonly RouteDoc[]): unknown {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const op: Record<string, unknown> = {
      summary: r.schema['summary'] ?? `${r.method} ${r.url}`,
      parameters: [...parameters(r.schema, 'path'), ...parameters(r.schema, 'query')],
      responses: {
        '200': { description: 'OK', content: { 'application/json': { schema: r.schema['response'] ?? {} } } },
        default: PROBLEM,
      },
      ...(r.public ? { security: [] } : {}),
    };
    if (r.schema['body'] !== undefined) {
      op['requestBody'] = { required: true, content: { 'application/json': { schema: r.schema['body'] } } };
    }
    (paths[pathOf(r.url)] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Tern admin API',
      version: '1',
      description:
        'Queue, trace, users, aliases, domains, DKIM keys, mailboxes, configuration and live events of a Tern mail server. ' +
        'Authenticate with `Authorization: Bearer TOKEN` (tern admin token NAME) or the page login cookie plus X-CSRF-Token.',
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer' },
        session: { type: 'apiKey', in: 'cookie', name: 'tern_admin' },
      },
    },
    security: [{ bearer: [] }, { session: [] }],
    paths,
  };
}

declare module 'fastify' {
  interface FastifySchema {
    /** One line for the OpenAPI description (Fastify itself ignores it). */
    summary?: string;
  }
  interface FastifyContextConfig {
    /** Reachable without a login (the route still decides, e.g. open_networks). */
    public?: boolean;
  }
}

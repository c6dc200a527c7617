// Users, aliases, send-as grants, domains and DKIM keys over HTTP, with the rules `tern user|alias|dkim|dns`
// apply (src/ops: address parsing, what is stored for a password, alias warnings, DNS records). Every
// change is logged as admin.change with the admin's name.
// GET /api/domains also asks DNS (through the server's own resolver) whether what is published matches
// what the domain needs: MX, SPF, each DKIM key, DMARC.

import type { FastifyInstance } from 'fastify';
import type { DkimSigningAlgorithm } from '../../delivery/dkim-sign.ts';
import { DkimSignError, generateDkimKey, listDkimKeys, removeDkimKey } from '../../delivery/dkim-sign.ts';
import { Events } from '../../core/events.ts';
import { aliasAddress, targetAddress, userAddress } from '../../ops/addresses.ts';
import { dkimKeyJson } from '../../ops/dkim.ts';
import { dnsRecordsFor, type DnsRecord } from '../../ops/dns.ts';
import { OpError } from '../../ops/errors.ts';
import { aliasWarnings, credentialsFor, sendAsPattern } from '../../ops/users.ts';
import type { AdminContext } from '../context.ts';

const iso = (ms: number): string => new Date(ms).toISOString();
const ADDRESS = { type: 'string', minLength: 3, maxLength: 320 } as const;
const PASSWORD = { type: 'string', minLength: 1, maxLength: 1024 } as const;

async function dkim<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof DkimSignError) throw new OpError('invalid', err.message);
    throw err;
  }
}

/** Whether DNS answers what a record asks for: "match", "missing", "different" or "error". */
async function dnsStatus(ctx: AdminContext, r: DnsRecord): Promise<{ status: string; found: string[] }> {
  if (r.type === 'MX') {
    const a = await ctx.resolver.mx(r.name);
    if (a.kind === 'error') return { status: 'error', found: [] };
    if (a.kind !== 'ok') return { status: 'missing', found: [] };
    const want = r.value.split(' ')[1]?.replace(/\.$/, '').toLowerCase() ?? '';
    const found = a.records.map((m) => `${m.preference} ${m.exchange}`);
    return { status: a.records.some((m) => m.exchange === want) ? 'match' : 'different', found };
  }
  const a = await ctx.resolver.txt(r.name);
  if (a.kind === 'error') return { status: 'error', found: [] };
  if (a.kind !== 'ok') return { status: 'missing', found: [] };
  const tag = r.value.split(';')[0]?.split(' ')[0] ?? '';
  const same = a.records.filter((t) => t.startsWith(tag));
  if (same.length === 0) return { status: 'missing', found: [...a.records] };
  const squash = (s: string): string => s.replace(/\s+/g, '');
  // DKIM: the key must be the same; the others: a record of the kind exists (its policy is the owner's choice).
  const ok = r.value.startsWith('v=DKIM1') ? same.some((t) => squash(t) === squash(r.value)) : true;
  return { status: ok ? 'match' : 'different', found: same };
}

export function registerDirectoryRoutes(app: FastifyInstance, ctx: AdminContext): void {
  const changed = (admin: string, action: string, detail: Record<string, unknown>): void =>
    ctx.logger.event(Events.adminChange, { admin, action, ...detail });
  const local = (): readonly string[] => ctx.config().localDomains;

  // Users
  app.get(
    '/api/users',
    { schema: { summary: 'Local users, with their quota limits and send-as grants' } },
    async (request) => {
      ctx.auth.require(request);
      const [users, grants] = await Promise.all([ctx.directory.listUsers(), ctx.directory.listSendAs()]);
      return {
        users: users.map((u) => ({
          address: u.address,
          created: iso(u.createdMs),
          hasPassword: u.hasPassword,
          sendAs: grants.filter((g) => g.user === u.address).map((g) => g.pattern),
        })),
      };
    },
  );

  app.post<{ Body: { address: string; password?: string } }>(
    '/api/users',
    {
      schema: {
        summary: 'Add a local user (without a password it receives mail but cannot log in)',
        body: {
          type: 'object',
          required: ['address'],
          additionalProperties: false,
          properties: { address: ADDRESS, password: PASSWORD },
        },
      },
    },
    async (request, reply) => {
      const p = ctx.auth.require(request);
      const address = userAddress(request.body.address, local());
      if ((await ctx.directory.getCredentials(address)) !== null)
        throw new OpError('conflict', `user ${address} already exists`);
      const stored = request.body.password === undefined ? null : await credentialsFor(request.body.password);
      await ctx.directory.addUser(address, stored?.passwordHash ?? null, stored?.scram ?? null);
      changed(p.name, 'user.add', { user: address });
      return reply.code(201).send({ address, hasPassword: stored !== null });
    },
  );

  app.put<{ Params: { address: string }; Body: { password: string } }>(
    '/api/users/:address/password',
    {
      schema: {
        summary: "Set a user's password",
        params: { type: 'object', properties: { address: ADDRESS } },
        body: {
          type: 'object',
          required: ['password'],
          additionalProperties: false,
          properties: { password: PASSWORD },
        },
      },
    },
    async (request) => {
      const p = ctx.auth.require(request);
      const address = userAddress(request.params.address, local());
      if ((await ctx.directory.getCredentials(address)) === null)
        throw new OpError('not-found', `no such user: ${address}`);
      await ctx.directory.setCredentials(address, await credentialsFor(request.body.password));
      changed(p.name, 'user.passwd', { user: address });
      return { address };
    },
  );

  app.delete<{ Params: { address: string } }>(
    '/api/users/:address',
    {
      schema: {
        summary: 'Delete a user (its stored mail is kept)',
        params: { type: 'object', properties: { address: ADDRESS } },
      },
    },
    async (request) => {
      const p = ctx.auth.require(request);
      const address = userAddress(request.params.address, local());
      if (!(await ctx.directory.deleteUser(address)))
        throw new OpError('not-found', `no such user: ${address}`);
      changed(p.name, 'user.del', { user: address });
      return { address, deleted: true };
    },
  );

  // Send-as grants
  app.post<{ Params: { address: string }; Body: { pattern: string } }>(
    '/api/users/:address/sendas',
    {
      schema: {
        summary: 'Let a user send as an address (local@domain) or a whole domain (@domain)',
        params: { type: 'object', properties: { address: ADDRESS } },
        body: {
          type: 'object',
          required: ['pattern'],
          additionalProperties: false,
          properties: { pattern: ADDRESS },
        },
      },
    },
    async (request, reply) => {
      const p = ctx.auth.require(request);
      const address = userAddress(request.params.address, local());
      if ((await ctx.directory.getCredentials(address)) === null)
        throw new OpError('not-found', `no such user: ${address}`);
      const pattern = sendAsPattern(request.body.pattern);
      await ctx.directory.addSendAs(address, pattern);
      changed(p.name, 'user.sendas.add', { user: address, pattern });
      return reply.code(201).send({ user: address, pattern });
    },
  );

  app.delete<{ Params: { address: string }; Querystring: { pattern: string } }>(
    '/api/users/:address/sendas',
    {
      schema: {
        summary: 'Take a send-as grant away',
        params: { type: 'object', properties: { address: ADDRESS } },
        querystring: { type: 'object', required: ['pattern'], properties: { pattern: ADDRESS } },
      },
    },
    async (request) => {
      const p = ctx.auth.require(request);
      const address = userAddress(request.params.address, local());
      const pattern = sendAsPattern(request.query.pattern);
      if (!(await ctx.directory.deleteSendAs(address, pattern)))
        throw new OpError('not-found', `${address} has no send-as grant ${pattern}`);
      changed(p.name, 'user.sendas.del', { user: address, pattern });
      return { user: address, pattern, deleted: true };
    },
  );

  // Aliases
  app.get(
    '/api/aliases',
    { schema: { summary: 'Aliases and catch-alls with their targets' } },
    async (request) => {
      ctx.auth.require(request);
      const aliases = await ctx.directory.listAliases();
      return { aliases: aliases.map((a) => ({ alias: a.alias, target: a.target })) };
    },
  );

  app.post<{ Body: { alias: string; target: string } }>(
    '/api/aliases',
    {
      schema: {
        summary:
          'Route an alias (name@domain, or @domain for a catch-all) to a target; warnings say what to check',
        body: {
          type: 'object',
          required: ['alias', 'target'],
          additionalProperties: false,
          properties: { alias: { type: 'string', minLength: 2, maxLength: 320 }, target: ADDRESS },
        },
      },
    },
    async (request, reply) => {
      const p = ctx.auth.require(request);
      const alias = aliasAddress(request.body.alias, local());
      const target = targetAddress(request.body.target);
      const existing = await ctx.directory.listAliases();
      if (existing.some((a) => a.alias === alias && a.target === target))
        throw new OpError('conflict', `alias ${alias} -> ${target} already exists`);
      await ctx.directory.addAlias(alias, target);
      changed(p.name, 'alias.add', { alias, target });
      return reply
        .code(201)
        .send({ alias, target, warnings: await aliasWarnings(ctx.directory, alias, target, existing) });
    },
  );

  app.delete<{ Querystring: { alias: string; target?: string } }>(
    '/api/aliases',
    {
      schema: {
        summary: 'Remove an alias (one target, or all of them)',
        querystring: {
          type: 'object',
          required: ['alias'],
          properties: { alias: { type: 'string', minLength: 2, maxLength: 320 }, target: ADDRESS },
        },
      },
    },
    async (request) => {
      const p = ctx.auth.require(request);
      const alias = aliasAddress(request.query.alias, local());
      const target = request.query.target === undefined ? undefined : targetAddress(request.query.target);
      if (!(await ctx.directory.deleteAlias(alias, target)))
        throw new OpError('not-found', `no alias ${alias}${target === undefined ? '' : ` -> ${target}`}`);
      changed(p.name, 'alias.del', { alias, ...(target === undefined ? {} : { target }) });
      return { alias, deleted: true };
    },
  );

  // Domains and their DNS
  app.get<{ Querystring: { check?: boolean } }>(
    '/api/domains',
    {
      schema: {
        summary: 'Local domains with the DNS records each needs; with check=true, whether DNS has them',
        querystring: { type: 'object', properties: { check: { type: 'boolean' } } },
      },
    },
    async (request) => {
      ctx.auth.require(request);
      const config = ctx.config();
      const domains = [];
      for (const domain of config.localDomains) {
        const r = await dnsRecordsFor(config, domain);
        const records = [];
        for (const rec of r.records) {
          records.push({
            ...rec,
            ...(request.query.check === true ? { dns: await dnsStatus(ctx, rec) } : {}),
          });
        }
        domains.push({ domain: r.domain, records, mtaStsPolicy: r.mtaStsPolicy, dkimKeys: r.keys.length });
      }
      return { hostname: config.hostname, domains };
    },
  );

  // DKIM keys
  app.get(
    '/api/dkim',
    { schema: { summary: 'DKIM signing keys with the TXT record to publish for each' } },
    async (request) => {
      ctx.auth.require(request);
      return { keys: (await listDkimKeys(ctx.config().dataDir)).map(dkimKeyJson) };
    },
  );

  app.post<{ Body: { domain: string; selector: string; algorithm?: 'rsa' | 'ed25519' } }>(
    '/api/dkim',
    {
      schema: {
        summary:
          'Make a DKIM key (RSA 2048 by default, or Ed25519); outbound mail of the domain is signed with it',
        body: {
          type: 'object',
          required: ['domain', 'selector'],
          additionalProperties: false,
          properties: {
            domain: { type: 'string', minLength: 1, maxLength: 253 },
            selector: { type: 'string', minLength: 1, maxLength: 63 },
            algorithm: { type: 'string', enum: ['rsa', 'ed25519'] },
          },
        },
      },
    },
    async (request, reply) => {
      const p = ctx.auth.require(request);
      const algorithm: DkimSigningAlgorithm =
        request.body.algorithm === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256';
      const made = await dkim(() =>
        generateDkimKey({
          dataDir: ctx.config().dataDir,
          domain: request.body.domain,
          selector: request.body.selector,
          algorithm,
          nowMs: ctx.clock.nowMs(),
        }),
      );
      changed(p.name, 'dkim.keygen', { domain: made.key.domain, selector: made.key.selector, algorithm });
      return reply
        .code(201)
        .send(dkimKeyJson({ key: made.key, createdMs: ctx.clock.nowMs(), paths: made.paths }));
    },
  );

  app.delete<{ Params: { domain: string; selector: string } }>(
    '/api/dkim/:domain/:selector',
    {
      schema: {
        summary: 'Delete a DKIM key (withdraw its DNS record days later)',
        params: {
          type: 'object',
          properties: {
            domain: { type: 'string', maxLength: 253 },
            selector: { type: 'string', maxLength: 63 },
          },
        },
      },
    },
    async (request) => {
      const p = ctx.auth.require(request);
      const key = await dkim(() =>
        removeDkimKey(ctx.config().dataDir, request.params.domain, request.params.selector),
      );
      changed(p.name, 'dkim.rm', { domain: key.domain, selector: key.selector });
      return { domain: key.domain, selector: key.selector, deleted: true };
    },
  );
}

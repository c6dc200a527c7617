import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  deliveryOverQuota,
  overQuotaFields,
  configQuota,
  formatBytes,
  overQuota,
  parseMessageLimit,
  parseStorageSize,
  quotaResources,
} from './quota.ts';

const ONE_MESSAGE = (bytes: number) => ({ bytes, messages: 1 });

describe('overQuota', () => {
  test('unlimited never refuses', () => {
    const limits = { storageBytes: null, messages: null };
    assert.equal(overQuota(limits, { messages: 1e9, bytes: 1e15 }, ONE_MESSAGE(1e9)), null);
  });

  test('storage: up to the limit exactly fits, one byte more does not', () => {
    const limits = { storageBytes: 1000, messages: null };
    assert.equal(overQuota(limits, { messages: 3, bytes: 900 }, ONE_MESSAGE(100)), null);
    assert.equal(overQuota(limits, { messages: 3, bytes: 900 }, ONE_MESSAGE(101)), 'storage');
    assert.equal(overQuota(limits, { messages: 0, bytes: 0 }, ONE_MESSAGE(1001)), 'storage');
  });

  test('messages: the count after adding may equal the limit', () => {
    const limits = { storageBytes: null, messages: 2 };
    assert.equal(overQuota(limits, { messages: 1, bytes: 0 }, ONE_MESSAGE(10)), null);
    assert.equal(overQuota(limits, { messages: 2, bytes: 0 }, ONE_MESSAGE(10)), 'messages');
    // A COPY of several messages counts them all.
    assert.equal(overQuota(limits, { messages: 0, bytes: 0 }, { bytes: 30, messages: 3 }), 'messages');
  });

  test('storage is named first when both would go over', () => {
    const limits = { storageBytes: 10, messages: 1 };
    assert.equal(overQuota(limits, { messages: 1, bytes: 10 }, ONE_MESSAGE(1)), 'storage');
  });

  test('what adds nothing is never refused, even over a lowered limit (RFC 9208 §4.1)', () => {
    const limits = { storageBytes: 10, messages: 1 };
    const over = { messages: 5, bytes: 500 };
    assert.equal(overQuota(limits, over, { bytes: 0, messages: 0 }), null);
    assert.equal(overQuota(limits, over, { bytes: -100, messages: -1 }), null);
    // Only the resource that grows counts.
    assert.equal(overQuota({ storageBytes: null, messages: 1 }, over, { bytes: 5, messages: 0 }), null);
  });
});

describe('configQuota', () => {
  test('0 is unlimited; anything else is the limit', () => {
    assert.deepEqual(configQuota({ mailboxQuotaBytes: 0, mailboxQuotaMessages: 0 }), {
      storageBytes: null,
      messages: null,
    });
    assert.deepEqual(configQuota({ mailboxQuotaBytes: 2 ** 31, mailboxQuotaMessages: 1 }), {
      storageBytes: 2 ** 31,
      messages: 1,
    });
  });
});

describe('quotaResources (RFC 9208 §5.1)', () => {
  test('STORAGE in KiB (usage up, limit down), MESSAGE as a count; unlimited ones left out', () => {
    assert.deepEqual(
      quotaResources({ storageBytes: 1_048_576, messages: 100 }, { messages: 7, bytes: 1025 }),
      [
        { name: 'STORAGE', usage: 2, limit: 1024 },
        { name: 'MESSAGE', usage: 7, limit: 100 },
      ],
    );
    assert.deepEqual(quotaResources({ storageBytes: 1500, messages: null }, { messages: 0, bytes: 0 }), [
      { name: 'STORAGE', usage: 0, limit: 1 },
    ]);
    assert.deepEqual(quotaResources({ storageBytes: null, messages: null }, { messages: 3, bytes: 9 }), []);
  });
});

describe('parseStorageSize', () => {
  test('bytes, and K/M/G/T as powers of 1024 (as Dovecot quota_rule reads them)', () => {
    assert.equal(parseStorageSize('1048576'), 1_048_576);
    assert.equal(parseStorageSize('500M'), 500 * 1024 ** 2);
    assert.equal(parseStorageSize('2G'), 2 * 1024 ** 3);
    assert.equal(parseStorageSize('2g'), 2 * 1024 ** 3);
    assert.equal(parseStorageSize('1.5G'), 1.5 * 1024 ** 3);
    assert.equal(parseStorageSize('512KiB'), 512 * 1024);
    assert.equal(parseStorageSize('3 MB'), 3 * 1024 ** 2);
    assert.equal(parseStorageSize('1T'), 1024 ** 4);
    assert.equal(parseStorageSize('100B'), 100);
  });

  test('unlimited (also none and 0) is null; default is default', () => {
    assert.equal(parseStorageSize('unlimited'), null);
    assert.equal(parseStorageSize('UNLIMITED'), null);
    assert.equal(parseStorageSize('none'), null);
    assert.equal(parseStorageSize('0'), null);
    assert.equal(parseStorageSize('0G'), null);
    assert.equal(parseStorageSize('default'), 'default');
  });

  test('anything else is undefined', () => {
    for (const bad of ['', '-1', '2X', 'G', '1e9', '2 G B', '1.2.3M', '9999999999999999T', 'iB', '5iB']) {
      assert.equal(parseStorageSize(bad), undefined, bad);
    }
  });
});

describe('parseMessageLimit', () => {
  test('a whole number, unlimited (or 0), or default', () => {
    assert.equal(parseMessageLimit('5000'), 5000);
    assert.equal(parseMessageLimit('0'), null);
    assert.equal(parseMessageLimit('unlimited'), null);
    assert.equal(parseMessageLimit('default'), 'default');
    for (const bad of ['', '-1', '1.5', '10k', 'many', '1234567890123456']) {
      assert.equal(parseMessageLimit(bad), undefined, bad);
    }
  });
});

describe('formatBytes', () => {
  test('binary units, one decimal at most', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1024), '1 KiB');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(500 * 1024 ** 2), '500 MiB');
    assert.equal(formatBytes(2 * 1024 ** 3), '2 GiB');
    assert.equal(formatBytes(5 * 1024 ** 4), '5 TiB');
  });
});

test('deliveryOverQuota: no usage read without limits; the resource exceeded, with the figures', async () => {
  let usageReads = 0;
  const usage = (messages: number, bytes: number) => () => {
    usageReads++;
    return Promise.resolve({ messages, bytes });
  };
  assert.equal(await deliveryOverQuota(() => Promise.resolve(null), usage(0, 0), 10), null);
  const none = { storageBytes: null, messages: null };
  assert.equal(await deliveryOverQuota(() => Promise.resolve(none), usage(0, 0), 10), null);
  assert.equal(usageReads, 0, 'a user without limits costs no usage read');
  const limits = { storageBytes: 1000, messages: 5 };
  assert.equal(await deliveryOverQuota(() => Promise.resolve(limits), usage(4, 900), 100), null);
  const over = await deliveryOverQuota(() => Promise.resolve(limits), usage(4, 950), 100);
  assert.deepEqual(over, { resource: 'storage', limits, usage: { messages: 4, bytes: 950 } });
  assert.deepEqual(overQuotaFields(over, 100), {
    resource: 'storage',
    sizeBytes: 100,
    usageBytes: 950,
    usageMessages: 4,
    limitBytes: 1000,
    limitMessages: 5,
  });
  assert.equal(
    (await deliveryOverQuota(() => Promise.resolve(limits), usage(5, 0), 1))?.resource,
    'messages',
  );
});

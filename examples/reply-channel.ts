/**
 * Reply channels (lymph's raw_rpc): a raw handler gets a channel and answers when it likes:
 * reply(value), ack(), nack() or error(err). Here a job queue acknowledges work it accepts and
 * refuses work when it is full. Run: `node dist/examples/reply-channel.js`.
 */
import { Client, NackError, Server, type ReplyChannel } from '../lib/index.js';

export async function runReplyChannel(log: (line: string) => void = console.log): Promise<void> {
  const server = new Server('jobs', { security: 'trusted_peer' });
  await server.bind('tcp://127.0.0.1:0');
  const queue: string[] = [];
  server.registerRpc(
    'submit',
    (channel: ReplyChannel, job: string) => {
      if (queue.length >= 2) return channel.nack(); // full: the caller gets NackError
      queue.push(job);
      log(`queued ${job} for ${channel.identity}`);
      setTimeout(() => channel.ack(), 10); // accepted: the caller's promise resolves to undefined
    },
    { raw: true, description: 'queue a job; nack when full' },
  );
  server.registerRpc('size', (channel: ReplyChannel) => channel.reply(queue.length), { raw: true });
  await server.start();

  const client = new Client('jobs', { security: 'trusted_peer', userId: 'builder' });
  client.connect(server.endpoint);
  try {
    await client.start();
    for (const job of ['build', 'test', 'deploy']) {
      try {
        await client.call.submit(job);
        log(`${job}: acknowledged`);
      } catch (error) {
        if (error instanceof NackError) log(`${job}: refused (queue full)`);
        else throw error;
      }
    }
    log(`queue size: ${await client.call.size()}`);
  } finally {
    await client.stop();
    await server.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runReplyChannel();

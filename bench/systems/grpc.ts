/**
 * System 5: @grpc/grpc-js unary calls, insecure (h2c on loopback), the same `upper` function.
 * The service is a plain definition object (no protoc, no proto-loader), with msgpackr serializers.
 */
import * as grpc from '@grpc/grpc-js';
import { Packr, Unpackr } from 'msgpackr';
import { expectUpper, retryUntil, upper, type Caller, type NodeSystem, type Rendezvous, type Responder } from './types.js';

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });
const serialize = (value: unknown): Buffer => packr.pack(value);
const deserialize = (bytes: Buffer): unknown => unpackr.unpack(bytes);

const service: grpc.ServiceDefinition = {
  upper: {
    path: '/bench.Bench/Upper',
    requestStream: false,
    responseStream: false,
    requestSerialize: serialize,
    requestDeserialize: deserialize,
    responseSerialize: serialize,
    responseDeserialize: deserialize,
  },
};

const channelOptions = {
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
  'grpc.max_send_message_length': 16 * 1024 * 1024,
};

async function startResponder(): Promise<Responder> {
  const server = new grpc.Server(channelOptions);
  server.addService(service, {
    upper(call: grpc.ServerUnaryCall<string, string>, callback: grpc.sendUnaryData<string>) {
      callback(null, upper(call.request));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    rendezvous: { endpoint: `127.0.0.1:${port}` },
    async close() {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

type UpperClient = grpc.Client & {
  upper(request: string, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: string) => void): grpc.ClientUnaryCall;
};

async function startCaller(rendezvous: Rendezvous | undefined): Promise<Caller> {
  const Constructor = grpc.makeGenericClientConstructor(service, 'Bench');
  const client = new Constructor(rendezvous!.endpoint!, grpc.credentials.createInsecure(), channelOptions) as unknown as UpperClient;
  const invoke = (payload: string, timeoutMs: number): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      client.upper(payload, { deadline: Date.now() + timeoutMs }, (error, response) => (error ? reject(error) : resolve(response!)));
    });
  return {
    call: (payload: string) => invoke(payload, 5000),
    async ready(timeoutMs) {
      await retryUntil(async () => expectUpper('ready?', await invoke('ready?', 500)), timeoutMs, 'grpc-js');
    },
    async close() {
      client.close();
    },
  };
}

export const grpcJs: NodeSystem = { binder: 'responder', startResponder, startCaller };

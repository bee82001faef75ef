package io.producerd.rmqv2;

import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.CountDownLatch;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientException;
import org.apache.rocketmq.client.apis.ClientConfigurationBuilder;
import org.apache.rocketmq.client.apis.StaticSessionCredentialsProvider;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.message.MessageBuilder;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.apache.rocketmq.client.apis.producer.Transaction;
import org.apache.rocketmq.client.apis.producer.TransactionChecker;
import org.apache.rocketmq.client.apis.producer.TransactionResolution;

/**
 * Sends through an apache.rocketmq.v2 endpoint with the official Java SDK only: a producer
 * built with the SDK's own API, sync, async, FIFO (message group), delayed (delivery
 * timestamp) and the SDK's batch form. Every acknowledged message is printed as one line
 * {@code SENT <json>} with what was sent and the receipt, for the Go test to read back and
 * compare.
 *
 * <p>Usage: {@code Driver ENDPOINT TOPIC RUN_ID [COUNT [tls|plain]]}: {@code tls} keeps the SDK's
 * default (TLS, any server certificate accepted). RUN_ID {@code consumer} tries a
 * SimpleConsumer instead; a RUN_ID starting with {@code tx-} sends transactional messages
 * instead. RMQV2_ACCESS_KEY/RMQV2_SECRET_KEY and RMQV2_NAMESPACE in the environment set the
 * SDK's credentials and namespace. Exit status 0 when every send was
 * acknowledged.
 */
public final class Driver {
  private static final ClientServiceProvider PROVIDER = ClientServiceProvider.loadService();

  public static void main(String[] args) throws Exception {
    if (args.length < 3) {
      System.err.println("usage: Driver ENDPOINT TOPIC RUN_ID [COUNT [tls|plain]]");
      System.exit(2);
    }
    String endpoint = args[0];
    String topic = args[1];
    String run = args[2];
    if (run.equals("consumer")) {
      consumer(endpoint, topic, args.length > 4 && args[4].equals("tls"));
      return;
    }
    int n = args.length > 3 ? Integer.parseInt(args[3]) : 5;
    boolean tls = args.length > 4 && args[4].equals("tls");
    ClientConfiguration cfg = config(endpoint, tls, 5);
    if (run.startsWith("tx-")) {
      transactions(cfg, topic, run);
      return;
    }
    try (Producer producer = PROVIDER.newProducerBuilder()
        .setClientConfiguration(cfg)
        .setTopics(topic)
        .build()) {
      for (int i = 0; i < n; i++) {
        Message m = message(topic, run, "sync", i, null, 0);
        print("sync", i, m, producer.send(m));
      }
      List<Message> async = new ArrayList<>();
      List<CompletableFuture<SendReceipt>> futures = new ArrayList<>();
      for (int i = 0; i < 4 * n; i++) {
        Message m = message(topic, run, "async", i, null, 0);
        async.add(m);
        futures.add(producer.sendAsync(m));
      }
      for (int i = 0; i < futures.size(); i++) {
        print("async", i, async.get(i), futures.get(i).get(10, TimeUnit.SECONDS));
      }
      for (int i = 0; i < 2 * n; i++) {
        Message m = message(topic, run, "fifo", i, "group-" + run, 0);
        print("fifo", i, m, producer.send(m));
      }
      long at = System.currentTimeMillis() + 2000;
      for (int i = 0; i < 2; i++) {
        Message m = message(topic, run, "delay", i, null, at);
        print("delay", i, m, producer.send(m));
      }
      // A delayed message recalled before its delivery with the SDK's recallMessage.
      Message recalled = message(topic, run, "recall", 0, null, at);
      SendReceipt rr = producer.send(recalled);
      if (rr.getRecallHandle() == null || rr.getRecallHandle().isEmpty()) {
        throw new IllegalStateException("no recall handle for a delayed message");
      }
      try {
        System.out.println("RECALLED " + rr.getMessageId() + " "
            + producer.recallMessage(topic, rr.getRecallHandle()).getMessageId());
      } catch (ClientException e) {
        // A broker with recallMessageEnable=false (its default) refuses every recall.
        System.out.println("RECALL-REFUSED " + rr.getMessageId() + " "
            + e.toString().replace('\n', ' '));
      }
      sendBatch(producer, topic, run, n);
    }
  }

  /**
   * The client configuration: the endpoint, TLS or not, the request timeout, and from the
   * environment the SDK's own credentials (RMQV2_ACCESS_KEY, RMQV2_SECRET_KEY) and namespace
   * (RMQV2_NAMESPACE) when they are set.
   */
  private static ClientConfiguration config(String endpoint, boolean tls, int timeoutSeconds) {
    ClientConfigurationBuilder b = ClientConfiguration.newBuilder()
        .setEndpoints(endpoint)
        .enableSsl(tls)
        .setRequestTimeout(Duration.ofSeconds(timeoutSeconds));
    String ak = System.getenv("RMQV2_ACCESS_KEY");
    String sk = System.getenv("RMQV2_SECRET_KEY");
    if (ak != null && sk != null) {
      b.setCredentialProvider(new StaticSessionCredentialsProvider(ak, sk));
    }
    String ns = System.getenv("RMQV2_NAMESPACE");
    if (ns != null) {
      b.setNamespace(ns);
    }
    return b.build();
  }

  /**
   * Transactional messages with the SDK's own API: one committed ({@code SENT} kind
   * {@code commit}), one rolled back ({@code rollback}), and one left open ({@code check}),
   * which the TransactionChecker commits when producerd relays the broker's check-back as a
   * RecoverOrphanedTransactionCommand. The checker prints {@code CHECKED <id> <case>}; the
   * driver waits up to 90 s for the open one's check, prints {@code WAITING} and keeps the
   * producer up (its EndTransaction for the check is sent after check() returned) until
   * stdin is closed.
   */
  private static void transactions(ClientConfiguration cfg, String topic, String run) throws Exception {
    CountDownLatch checked = new CountDownLatch(1);
    TransactionChecker checker = view -> {
      String c = view.getProperties().getOrDefault("case", "");
      System.out.println("CHECKED " + view.getMessageId() + " " + c);
      if (c.equals("check")) {
        checked.countDown();
        return TransactionResolution.COMMIT;
      }
      return c.equals("rollback") ? TransactionResolution.ROLLBACK : TransactionResolution.COMMIT;
    };
    try (Producer producer = PROVIDER.newProducerBuilder()
        .setClientConfiguration(cfg)
        .setTopics(topic)
        .setTransactionChecker(checker)
        .build()) {
      for (String c : new String[] {"commit", "rollback", "check"}) {
        Message m = PROVIDER.newMessageBuilder()
            .setTopic(topic)
            .setTag("tx")
            .setKeys(run + "-" + c)
            .addProperty("run", run)
            .addProperty("case", c)
            .addProperty("index", "0")
            .setBody((run + " tx " + c).getBytes(StandardCharsets.UTF_8))
            .build();
        Transaction tx = producer.beginTransaction();
        SendReceipt r = producer.send(m, tx);
        if (c.equals("commit")) {
          tx.commit();
        } else if (c.equals("rollback")) {
          tx.rollback();
        }
        print(c, 0, m, r);
      }
      if (!checked.await(90, TimeUnit.SECONDS)) {
        throw new IllegalStateException("no check-back for the open transaction within 90 s");
      }
      // The SDK sends the checker's answer after check() returned: the producer stays
      // up until the caller closes stdin (it reads the committed message back first).
      System.out.println("WAITING");
      System.out.flush();
      while (System.in.read() >= 0) {
        // drain until EOF
      }
    }
  }

  /**
   * Tries a SimpleConsumer against the endpoint: producerd serves no consumers, so building
   * or receiving must fail. Prints {@code CONSUMER REFUSED <exception>} and exits 0 when it
   * does, exits 1 when a receive succeeds.
   */
  private static void consumer(String endpoint, String topic, boolean tls) {
    ClientConfiguration cfg = ClientConfiguration.newBuilder()
        .setEndpoints(endpoint).enableSsl(tls).setRequestTimeout(Duration.ofSeconds(3)).build();
    try (SimpleConsumer c = PROVIDER.newSimpleConsumerBuilder()
        .setClientConfiguration(cfg)
        .setConsumerGroup("producerd_it_consumer")
        .setAwaitDuration(Duration.ofSeconds(1))
        .setSubscriptionExpressions(Map.of(topic, FilterExpression.SUB_ALL))
        .build()) {
      c.receive(1, Duration.ofSeconds(10));
    } catch (Exception e) {
      System.out.println("CONSUMER REFUSED " + e.toString().replace('\n', ' '));
      return;
    }
    System.out.println("CONSUMER RECEIVED");
    System.exit(1);
  }

  private static Message message(String topic, String run, String kind, int i, String group, long deliverAt) {
    MessageBuilder b = PROVIDER.newMessageBuilder()
        .setTopic(topic)
        .setTag(kind)
        .setKeys(run + "-" + kind + "-" + i, "k2")
        .addProperty("run", run)
        .addProperty("index", Integer.toString(i))
        .setBody((run + " " + kind + " " + i).getBytes(StandardCharsets.UTF_8));
    if (group != null) {
      b.setMessageGroup(group);
    }
    if (deliverAt > 0) {
      b.setDeliveryTimestamp(deliverAt);
    }
    return b.build();
  }

  /**
   * The SDK's public API sends one message per request; its internal send(List, boolean) is
   * the batch form (one SendMessageRequest carrying every message), reached by reflection.
   */
  @SuppressWarnings("unchecked")
  private static void sendBatch(Producer producer, String topic, String run, int n) throws Exception {
    List<Message> batch = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      batch.add(message(topic, run, "batch", i, null, 0));
    }
    Method send = producer.getClass().getDeclaredMethod("send", List.class, boolean.class);
    send.setAccessible(true);
    Future<List<SendReceipt>> f = (Future<List<SendReceipt>>) send.invoke(producer, batch, false);
    List<SendReceipt> receipts = f.get(10, TimeUnit.SECONDS);
    if (receipts.size() != batch.size()) {
      throw new IllegalStateException("batch: " + receipts.size() + " receipts for " + batch.size() + " messages");
    }
    for (int i = 0; i < batch.size(); i++) {
      print("batch", i, batch.get(i), receipts.get(i));
    }
  }

  private static void print(String kind, int i, Message m, SendReceipt r) throws Exception {
    long offset = -1;
    try {
      offset = (long) r.getClass().getMethod("getOffset").invoke(r);
    } catch (ReflectiveOperationException ignored) {
      // not a SendReceiptImpl
    }
    StringBuilder b = new StringBuilder("SENT {");
    b.append("\"kind\":").append(q(kind)).append(",\"index\":").append(i)
        .append(",\"id\":").append(q(r.getMessageId().toString()))
        .append(",\"offset\":").append(offset)
        .append(",\"tag\":").append(q(m.getTag().orElse("")))
        .append(",\"keys\":[");
    int k = 0;
    for (String key : m.getKeys()) {
      b.append(k++ > 0 ? "," : "").append(q(key));
    }
    b.append("],\"group\":").append(q(m.getMessageGroup().orElse("")))
        .append(",\"deliver\":").append(m.getDeliveryTimestamp().orElse(0L))
        .append(",\"body\":").append(q(StandardCharsets.UTF_8.decode(m.getBody()).toString()))
        .append(",\"props\":{");
    k = 0;
    for (var e : m.getProperties().entrySet()) {
      b.append(k++ > 0 ? "," : "").append(q(e.getKey())).append(':').append(q(e.getValue()));
    }
    b.append("}}");
    System.out.println(b);
  }

  /** Quotes a string that holds no quote, backslash or control character. */
  private static String q(String s) {
    return '"' + s + '"';
  }
}

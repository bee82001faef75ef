package io.producerd.rmqv2;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.producer.Producer;

/**
 * Load from the official Java SDK against an apache.rocketmq.v2 endpoint (producerd or the
 * Apache RocketMQ Proxy), for the side-by-side comparison. Sync mode runs CONC sender
 * threads; async mode keeps CONC sends in flight. Sends during the warm-up are not counted.
 * Prints {@code MARK start} and {@code MARK end} around the measured phase, then one line
 * {@code RESULT <json>}: counts, rate, latency percentiles, and the start
 * time and latency of every send slower than 500 ms or failed (for the failover scenario).
 *
 * <p>Usage: {@code Bench ENDPOINT TOPIC sync|async CONC SECONDS [BODY_BYTES] [WARMUP_SECONDS]}.
 */
public final class Bench {
  private static final long SLOW_NANOS = TimeUnit.MILLISECONDS.toNanos(500);

  private long[] lat = new long[1 << 16];
  private int count;
  private long failed;
  private final List<long[]> slow = new ArrayList<>();

  public static void main(String[] args) throws Exception {
    String endpoint = args[0];
    String topic = args[1];
    boolean async = args[2].equals("async");
    int conc = Integer.parseInt(args[3]);
    long secs = Long.parseLong(args[4]);
    int size = args.length > 5 ? Integer.parseInt(args[5]) : 1024;
    long warm = args.length > 6 ? Long.parseLong(args[6]) : 3;
    ClientServiceProvider provider = ClientServiceProvider.loadService();
    ClientConfiguration cfg = ClientConfiguration.newBuilder()
        .setEndpoints(endpoint).enableSsl(false).setRequestTimeout(Duration.ofSeconds(3)).build();
    byte[] body = new byte[size];
    Arrays.fill(body, (byte) 'x');
    Message msg = provider.newMessageBuilder().setTopic(topic).setTag("bench").setBody(body).build();
    try (Producer producer = provider.newProducerBuilder().setClientConfiguration(cfg).setTopics(topic).build()) {
      long start = System.nanoTime();
      long measureFrom = start + TimeUnit.SECONDS.toNanos(warm);
      long end = measureFrom + TimeUnit.SECONDS.toNanos(secs);
      Bench b = new Bench();
      // MARK lines let the caller read the server's CPU over exactly the measured phase.
      Thread marks = new Thread(() -> {
        try {
          TimeUnit.NANOSECONDS.sleep(measureFrom - System.nanoTime());
          System.out.println("MARK start");
          System.out.flush();
          TimeUnit.NANOSECONDS.sleep(end - System.nanoTime());
          System.out.println("MARK end");
          System.out.flush();
        } catch (InterruptedException ignored) {
          Thread.currentThread().interrupt();
        }
      });
      marks.setDaemon(true);
      marks.start();
      if (async) {
        Semaphore inflight = new Semaphore(conc);
        while (System.nanoTime() < end) {
          inflight.acquire();
          long t0 = System.nanoTime();
          long wall = System.currentTimeMillis();
          producer.sendAsync(msg).whenComplete((r, e) -> {
            b.record(t0, wall, e == null, measureFrom);
            inflight.release();
          });
        }
        inflight.acquire(conc);
      } else {
        Thread[] threads = new Thread[conc];
        for (int i = 0; i < conc; i++) {
          threads[i] = new Thread(() -> {
            while (System.nanoTime() < end) {
              long t0 = System.nanoTime();
              long wall = System.currentTimeMillis();
              boolean ok = true;
              try {
                producer.send(msg);
              } catch (Exception e) {
                ok = false;
              }
              b.record(t0, wall, ok, measureFrom);
            }
          });
          threads[i].start();
        }
        for (Thread t : threads) {
          t.join();
        }
      }
      b.print(args[2], conc, secs);
    }
  }

  private synchronized void record(long t0, long wall, boolean ok, long measureFrom) {
    long d = System.nanoTime() - t0;
    if (t0 < measureFrom) {
      return;
    }
    if (!ok || d > SLOW_NANOS) {
      failed += ok ? 0 : 1;
      if (slow.size() < 5000) {
        slow.add(new long[] {wall, TimeUnit.NANOSECONDS.toMillis(d), ok ? 1 : 0});
      }
      if (!ok) {
        return;
      }
    }
    if (count == lat.length) {
      lat = Arrays.copyOf(lat, 2 * count);
    }
    lat[count++] = d;
  }

  private synchronized void print(String mode, int conc, long secs) {
    int n = count;
    long[] all = Arrays.copyOf(lat, n);
    Arrays.sort(all);
    StringBuilder b = new StringBuilder("RESULT {");
    b.append("\"mode\":\"").append(mode).append("\",\"conc\":").append(conc)
        .append(",\"ok\":").append(n).append(",\"failed\":").append(failed)
        .append(",\"secs\":").append(secs)
        .append(",\"p50_ms\":").append(pct(all, 0.50)).append(",\"p99_ms\":").append(pct(all, 0.99))
        .append(",\"max_ms\":").append(pct(all, 1.0)).append(",\"slow\":[");
    for (int i = 0; i < slow.size(); i++) {
      long[] e = slow.get(i);
      b.append(i > 0 ? "," : "").append('[').append(e[0]).append(',').append(e[1]).append(',').append(e[2]).append(']');
    }
    b.append("]}");
    System.out.println(b);
  }

  private static double pct(long[] sorted, double p) {
    if (sorted.length == 0) {
      return 0;
    }
    int i = (int) Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1);
    return Math.round(sorted[Math.max(0, i)] / 1e4) / 100.0;
  }
}

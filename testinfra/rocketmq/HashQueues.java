// HashQueues prints the queue the Java client's SelectMessageQueueByHash picks for each
// sharding key, over the publish queue list the Java producer builds from the NameServer's
// route of a topic. Used by producerd's keyed-order integration test as the reference:
//
//   java -cp "$(cat testinfra/rocketmq/cp.txt)" testinfra/rocketmq/HashQueues.java \
//       127.0.0.1:9876 IT_Order key1 key2 ...
//
// Output: one line per key, "key<TAB>brokerName<TAB>queueId".
import java.util.List;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.selector.SelectMessageQueueByHash;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageQueue;

public class HashQueues {
    public static void main(String[] args) throws Exception {
        DefaultMQProducer producer = new DefaultMQProducer("producerd_hash_reference");
        producer.setNamesrvAddr(args[0]);
        producer.setInstanceName("hash-reference-" + ProcessHandle.current().pid());
        producer.start();
        try {
            List<MessageQueue> mqs = producer.fetchPublishMessageQueues(args[1]);
            SelectMessageQueueByHash selector = new SelectMessageQueueByHash();
            StringBuilder out = new StringBuilder();
            for (int i = 2; i < args.length; i++) {
                MessageQueue mq = selector.select(mqs, new Message(args[1], new byte[] {1}), args[i]);
                out.append(args[i]).append('\t').append(mq.getBrokerName()).append('\t').append(mq.getQueueId()).append('\n');
            }
            System.out.print(out);
            System.out.flush();
        } finally {
            producer.shutdown();
        }
    }
}

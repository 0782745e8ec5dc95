"""TensorFlow/Keras reference for kiln-bench: the same AlexNet (the notebook's layers,
logits + sparse softmax cross-entropy like Kiln), batch, threads and step count,
printing the same JSON fields as kiln-bench's "alexnet" entries.

    python3 bench/tensorflow_alexnet.py --batch 128 --image-size 224 --steps 3 --threads 2
"""
import argparse
import json
import os
import resource


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, action="append")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from timing import best_of, result_row
    from tensorflow import keras
    from tensorflow.keras import layers

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    side = args.image_size

    def alexnet():
        return keras.Sequential([
            keras.Input((side, side, 1)),
            layers.Conv2D(96, 11, strides=4, activation="relu"), layers.MaxPooling2D(3, 2),
            layers.Conv2D(256, 5, padding="same", activation="relu"), layers.MaxPooling2D(3, 2),
            layers.Conv2D(384, 3, padding="same", activation="relu"),
            layers.Conv2D(384, 3, padding="same", activation="relu"),
            layers.Conv2D(256, 3, padding="same", activation="relu"), layers.MaxPooling2D(3, 2),
            layers.Flatten(), layers.Dense(4096, activation="relu"), layers.Dropout(0.5),
            layers.Dense(4096, activation="relu"), layers.Dropout(0.5), layers.Dense(10),
        ])


    results = []
    for n in args.batch or [32, 128]:
        model = alexnet()
        sgd = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        x = tf.random.uniform((n, side, side, 1))
        labels = tf.constant([i % 10 for i in range(n)])

        @tf.function
        def train_step():
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model(x, training=True))
            sgd.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            return loss

        @tf.function
        def infer_step():
            return tf.argmax(model(x, training=False), axis=1)

        t = best_of(args.steps, lambda: float(train_step()))
        i = best_of(args.steps, lambda: infer_step().numpy())
        results.append(result_row(n, t, i))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"backend": f"tensorflow {tf.__version__}", "threads": args.threads,
                      "image_size": side, "alexnet": results, "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main()

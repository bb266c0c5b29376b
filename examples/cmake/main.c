/* Runs the generated MNIST model once on an all-zero image and prints the winning class. */
#include <stdio.h>

#include "model.h"

int main(void)
{
    static float image[MODEL_INPUT0_SIZE]; /* zeros; a real application fills it from its sensor */
    static float logits[MODEL_OUTPUT0_SIZE];
    int best = 0;

    model_run(image, logits);
    for (int i = 1; i < MODEL_OUTPUT0_SIZE; i++) {
        if (logits[i] > logits[best]) {
            best = i;
        }
    }
    printf("lenet5 on a blank image: class %d (logit %.3f)\n", best, (double)logits[best]);
    return 0;
}

/* A tiny Pascal VOC layout the detection tests write for themselves: PNG pictures of solid red and blue
 * rectangles on grey, never overlapping (object k lies in the k-th third of the width), with their annotations (some objects marked difficult) and the trainval and test lists.
 * A red object is always redder than green and blue, a blue one bluer than red and green, so a test can check
 * that a box still covers its object after augmentation. */
#ifndef NB_SYNTH_VOC_H
#define NB_SYNTH_VOC_H

#include <stdint.h>

#define SYNTH_VOC_CLASSES "red,blue"

/* <root>/SYNTH/{JPEGImages,Annotations,ImageSets/Main}; pictures size x size with 1 to 3 objects. With
 * corrupt, the first trainval picture is a broken PNG (a loader must skip and count it). */
void synth_voc_write(const char *root, int n_train, int n_test, int size, uint64_t seed, int corrupt);

#endif

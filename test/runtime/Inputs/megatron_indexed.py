"""Writes an indexed dataset as Megatron-LM writes it, and the samples its
GPTDataset would read, for IndexedDatasetTest.

Written from Megatron's code (megatron/core/datasets/indexed_dataset.py
_IndexWriter and IndexedDatasetBuilder; gpt_dataset.py _build_document_index,
_build_shuffle_index, _query_document_sample_shuffle_indices; helpers.cpp
build_sample_idx), not from Loom's: it is the reference Loom is checked
against.

usage: megatron_indexed.py PREFIX SEQ SEED SAMPLES
  writes PREFIX.bin, PREFIX.idx, and PREFIX.samples (one sample a line: the
  seq + 1 token ids of samples 0..SAMPLES-1 of a one-epoch GPTDataset over all
  documents, shuffled by numpy.random.RandomState(SEED)).
"""
import struct
import sys

import numpy

_INDEX_HEADER = b"MMIDIDX\x00\x00"
DTYPE_CODES = {numpy.uint8: 1, numpy.int8: 2, numpy.int16: 3, numpy.int32: 4,
               numpy.int64: 5, numpy.float64: 6, numpy.float32: 7,
               numpy.uint16: 8}

prefix, seq, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
dtype = numpy.uint16

# Documents of uneven lengths (some shorter than a sample, one empty), with
# ids that say where they come from: document d, token t -> 1000 * d + t.
lengths = [5, 1, 17, 0, 9, 3, 12, 7, 2, 11]
documents = [[1000 * d + t for t in range(n)] for d, n in enumerate(lengths)]

# IndexedDatasetBuilder: add_document(tensor, [len]) per document, finalize.
sequence_lengths, document_indices = [], [0]
with open(prefix + ".bin", "wb") as data_file:
    for doc in documents:
        np_array = numpy.array(doc, dtype=dtype)
        data_file.write(np_array.tobytes(order="C"))
        sequence_lengths.extend([len(doc)])
        document_indices.append(len(sequence_lengths))

# _IndexWriter.__enter__ and write.
with open(prefix + ".idx", "wb") as idx_writer:
    idx_writer.write(_INDEX_HEADER)
    idx_writer.write(struct.pack("<Q", 1))
    idx_writer.write(struct.pack("<B", DTYPE_CODES[dtype]))
    itemsize = numpy.dtype(dtype).itemsize
    sequence_pointers, curr_ptr = [], 0
    for length in sequence_lengths:
        sequence_pointers.append(curr_ptr)
        curr_ptr += length * itemsize
    idx_writer.write(struct.pack("<Q", len(sequence_lengths)))
    idx_writer.write(struct.pack("<Q", len(document_indices)))
    idx_writer.write(numpy.array(sequence_lengths, dtype=numpy.int32).tobytes(order="C"))
    idx_writer.write(numpy.array(sequence_pointers, dtype=numpy.int64).tobytes(order="C"))
    idx_writer.write(numpy.array(document_indices, dtype=numpy.int64).tobytes(order="C"))

# GPTDataset over documents arange(0, 10), one epoch.
sizes = numpy.array(sequence_lengths, dtype=numpy.int32)
numpy_random_state = numpy.random.RandomState(seed)
document_index = numpy.mgrid[0:1, 0:len(documents)][1]
document_index[:] = numpy.arange(len(documents), dtype=numpy.int32)
document_index = document_index.reshape(-1).astype(numpy.int32)
numpy_random_state.shuffle(document_index)

tokens_per_epoch = int(sizes.sum())
num_samples = (tokens_per_epoch - 1) // seq
sample_idx = numpy.zeros((num_samples + 1, 2), dtype=numpy.int64)
document_idx_index, doc_offset = 0, 0
sample_idx[0] = (document_idx_index, doc_offset)
sample_idx_index = 1
while sample_idx_index <= num_samples:
    remaining_seq_length = seq + 1
    while remaining_seq_length != 0:
        document_length = sizes[document_index[document_idx_index]] - doc_offset
        remaining_seq_length -= document_length
        if remaining_seq_length <= 0:
            doc_offset += remaining_seq_length + document_length - 1
            remaining_seq_length = 0
        else:
            if document_idx_index == len(document_index) - 1:
                doc_offset = sizes[document_index[document_idx_index]] - 1
                break
            document_idx_index += 1
            doc_offset = 0
    sample_idx[sample_idx_index] = (document_idx_index, doc_offset)
    sample_idx_index += 1

shuffle_index = numpy.arange(0, num_samples, 1, dtype=numpy.uint32)
numpy_random_state.shuffle(shuffle_index)

def get(doc, offset, length=None):
    values = documents[doc][offset:]
    return values if length is None else values[:length]

with open(prefix + ".samples", "w") as out:
    for idx in range(count):
        idx = shuffle_index[idx % num_samples]
        doc_index_beg, doc_index_beg_offset = sample_idx[idx]
        doc_index_end, doc_index_end_offset = sample_idx[idx + 1]
        if doc_index_beg == doc_index_end:
            sample = get(document_index[doc_index_beg], doc_index_beg_offset,
                         doc_index_end_offset - doc_index_beg_offset + 1)
        else:
            parts = [get(document_index[doc_index_beg], doc_index_beg_offset)]
            for i in range(doc_index_beg + 1, doc_index_end):
                parts.append(get(document_index[i], 0))
            parts.append(get(document_index[doc_index_end], 0, doc_index_end_offset + 1))
            sample = sum(parts, [])
        assert len(sample) == seq + 1, (idx, sample)
        out.write(" ".join(map(str, sample)) + "\n")

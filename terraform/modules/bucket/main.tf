# The private bucket holding the registry: content-addressed image files
# under images/ and the catalog under streams/v1/. Nothing is public; only
# the CloudFront distribution reads it (policy.tf).

locals {
  # prefix is the registry's key prefix with its trailing slash ("" for
  # the whole bucket).
  prefix = var.registry_prefix == "" ? "" : "${var.registry_prefix}/"
  # aws is 1 when the AWS-only resources are wanted, else 0 (a count).
  aws = var.aws_only_resources ? 1 : 0
}

resource "aws_s3_bucket" "this" {
  bucket        = var.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

# Versioning keeps every overwritten or deleted object for
# noncurrent_version_days: a catalog rewritten by mistake or a file pruned
# too early can be restored.
resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  # One bucket-configuration change at a time: MinIO rewrites a bucket's
  # settings as a whole, and two concurrent changes lose one of them.
  depends_on = [aws_s3_bucket_versioning.this]

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn == null ? null : true
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  count  = local.aws
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs off: the bucket owner owns every object, whoever wrote it.
resource "aws_s3_bucket_ownership_controls" "this" {
  count  = local.aws
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  count  = local.aws
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }

    # A pruned file leaves a delete marker; once its last version expired
    # the marker goes too.
    expiration {
      expired_object_delete_marker = true
    }
  }

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}
